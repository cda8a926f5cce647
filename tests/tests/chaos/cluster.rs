//! Row 26: a three-node RabbitMQ cluster on this machine loses the node leading the work
//! queue mid-load; the quorum queue elects a new leader, the worker moves to a surviving node
//! from its `AMQP_URL` list, and the killed node rejoins and catches up.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::chaos::{PrivateCluster, Rig, assert_clean, check_row};
use mq::admin::Admin;
use settings::MqConfig;
use switchyard_sandbox::{Fault, Provider};
use tokio::time::Instant;

use crate::{LOG, SETTLE, gate, wait_results};

/// `name leader members online` of `queue`, as `rabbitmqctl list_queues` prints it.
async fn queue_status(cluster: &PrivateCluster, queue: &str) -> Option<String> {
    for node in &cluster.nodes {
        if let Ok(out) = node
            .ctl(&["list_queues", "name", "leader", "members", "online", "--silent"])
            .await
            && let Some(line) = out.lines().find(|line| line.split_whitespace().next() == Some(queue))
        {
            return Some(line.to_owned());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_26_cluster_loses_the_queue_leader() {
    gate();
    let cluster = PrivateCluster::start("row26", 3).await;
    // The harness talks to the second node: the results observer is a classic queue, which
    // lives on one node only and must not be the one that dies. The work queue is declared
    // through the first node, which makes it the queue's first leader.
    let harness_urls = [1, 0, 2]
        .iter()
        .map(|i| cluster.nodes[*i].amqp_url())
        .collect::<Vec<_>>()
        .join(",");
    // One Spotler call per contact keeps the load going long enough to lose a node under it.
    let mut rig = Rig::new(
        "row26",
        &harness_urls,
        &cluster.urls(),
        &[("CONTACT_SYNC_BULK", "false")],
    )
    .await;
    let first_url = cluster.nodes[0].amqp_url();
    let first: HashMap<&str, &str> = [
        ("AMQP_URL", first_url.as_str()),
        ("SWITCHYARD_NAMESPACE", rig.namespace.as_str()),
    ]
    .into_iter()
    .collect();
    let first = MqConfig::from_strings(&first).unwrap_or_else(|e| panic!("{e}"));
    let admin = Admin::connect(&first).await.unwrap_or_else(|e| panic!("{e}"));
    admin
        .declare(&[rig.topology()])
        .await
        .unwrap_or_else(|e| panic!("declare: {e}"));
    admin.close().await;
    rig.declare().await;
    let queue = rig.queue("contact-sync");
    let status = queue_status(&cluster, &queue)
        .await
        .unwrap_or_else(|| panic!("{queue} is not on the cluster"));
    let leader = status.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let leader_node = cluster
        .node(&leader)
        .unwrap_or_else(|| panic!("leader {leader} is not one of ours: {status}"));
    for node in &cluster.nodes {
        assert!(status.contains(node.name()), "replicated on every node: {status}");
    }
    assert_ne!(
        leader,
        cluster.nodes[1].name(),
        "the observer's node must survive: {status}"
    );
    // The worker tries the leader first, so losing it also costs the worker its connection.
    let mut urls = vec![leader_node.amqp_url()];
    urls.extend(
        cluster
            .nodes
            .iter()
            .filter(|n| n.name() != leader)
            .map(|n| n.amqp_url()),
    );
    rig.env.insert("AMQP_URL".to_owned(), urls.join(","));
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(50))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.publish_contacts(200).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert!(
        rig.results().len() < 300,
        "the load must still be running when the node dies"
    );
    leader_node.kill9().await;
    let killed = Instant::now();
    rig.reconnect();
    let before = rig.results().len();
    wait_results(&mut rig, before + 10, Duration::from_secs(60)).await;
    let resumed = killed.elapsed();
    let report = check_row("26", rig.settle(SETTLE).await);
    let new_status = queue_status(&cluster, &queue).await.unwrap_or_default();
    leader_node.restart().await;
    let rejoined = Instant::now();
    let mut caught_up = None;
    while rejoined.elapsed() < Duration::from_secs(60) {
        let status = queue_status(&cluster, &queue).await.unwrap_or_default();
        let online = status.rsplit('[').next().unwrap_or_default();
        if online.contains(&leader) {
            caught_up = Some(rejoined.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "row 26: killed leader {leader}; processing resumed {resumed:?} later on {}; the node rejoined the \
         queue {caught_up:?} after its restart",
        new_status.split_whitespace().nth(1).unwrap_or("?")
    );
    assert!(resumed <= Duration::from_secs(30), "resumed within 30 s: {resumed:?}");
    assert!(caught_up.is_some(), "the killed node is a queue member online again");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("26", "worker logs", &logs, &[]);
    rig.finish().await;
}
