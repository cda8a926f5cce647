//! Static segments as Spotler temporary lists (`segment.exported`): create a list with its
//! contacts, add contacts to it, or delete it.
//!
//! The Spotler list id is `<SPOTLER_TEMPLIST_PREFIX><segment_id>`; the prefix is how
//! contact-sync tells its own lists from the ones other systems or marketers made. Every step
//! is safe to repeat: a create whose list exists (a redelivery after the create went through)
//! adds the contacts instead, adding a member twice changes nothing, and deleting a list that
//! is gone is done.
//!
//! Spotler holds at most 30 temporary lists. At the cap a create fails for good with a clear
//! error, or, with `SPOTLER_TEMPLIST_EVICT_OLDEST=true`, the oldest list with our prefix is
//! deleted to make room (never another system's list). Two replicas evicting at the same moment
//! may each delete one.

use api_client::CallError;
use messages::contact::{SegmentAction, SegmentExported};
use mq::{Incoming, Outcome};
use provider_spotler::{TempList, TempListCreated};

use crate::handler::{ContactSync, Report, SPOTLER, SpotlerDestination, settle};

/// Contacts sent per call (the segment is split into calls of this size).
const CONTACTS_PER_CALL: usize = 1000;

/// The oldest list whose id starts with `prefix`, other than `except`.
fn oldest_of_ours<'a>(lists: &'a [TempList], prefix: &str, except: &str) -> Option<&'a TempList> {
    lists
        .iter()
        .filter(|l| l.external_temporary_list_id.starts_with(prefix) && l.external_temporary_list_id != except)
        // Lists without a creation time count as newest; `min_by_key` keeps the first of equals,
        // and Spotler lists them oldest first.
        .min_by_key(|l| (l.created_at.is_none(), l.created_at.clone()))
}

impl ContactSync {
    pub(crate) async fn segment(&self, message: &Incoming, segment: &SegmentExported) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(spotler) = &self.spotler else {
            return outcome;
        };
        if !message.wants(SPOTLER) {
            return outcome;
        }
        let list_id = format!("{}{}", spotler.templist_prefix, segment.segment_id);
        let (operation, result) = match segment.action {
            SegmentAction::Create => ("templist_create", self.create_list(spotler, &list_id, segment).await),
            SegmentAction::Add => ("templist_add", add_all(spotler, &list_id, &segment.contact_ids).await),
            SegmentAction::Delete => (
                "templist_delete",
                spotler.client.delete_templist(&list_id).await.map(drop),
            ),
        };
        let report = Report {
            destination: SPOTLER,
            operation,
            contact_id: None,
            segment_id: Some(&segment.segment_id),
        };
        settle(&mut outcome, message, report, result.map(|()| None));
        outcome
    }

    async fn create_list(
        &self,
        spotler: &SpotlerDestination,
        list_id: &str,
        segment: &SegmentExported,
    ) -> Result<(), CallError> {
        let name = segment.name.as_deref().unwrap_or(&segment.segment_id);
        let first = &segment.contact_ids[..segment.contact_ids.len().min(CONTACTS_PER_CALL)];
        let rest = &segment.contact_ids[first.len()..];
        let mut evicted = false;
        loop {
            match spotler.client.create_templist(list_id, name, first).await? {
                TempListCreated::Created => break,
                TempListCreated::AlreadyExists => {
                    add_all(spotler, list_id, first).await?;
                    break;
                }
                TempListCreated::TooMany if spotler.templist_evict_oldest && !evicted => {
                    evict_oldest(spotler, list_id).await?;
                    evicted = true;
                }
                TempListCreated::TooMany => {
                    let hint = if spotler.templist_evict_oldest {
                        "even after deleting our oldest list"
                    } else {
                        "delete one (a segment.exported with action delete) or set SPOTLER_TEMPLIST_EVICT_OLDEST=true"
                    };
                    return Err(CallError::Permanent(format!(
                        "spotler create_templist: the account holds the maximum of 30 temporary lists; {hint}"
                    )));
                }
            }
        }
        add_all(spotler, list_id, rest).await
    }
}

/// Adds `contacts` in calls of [`CONTACTS_PER_CALL`].
async fn add_all(spotler: &SpotlerDestination, list_id: &str, contacts: &[String]) -> Result<(), CallError> {
    for chunk in contacts.chunks(CONTACTS_PER_CALL) {
        if !spotler.client.add_to_templist(list_id, chunk).await? {
            return Err(CallError::Permanent(format!(
                "spotler add_to_templist: there is no temporary list `{list_id}`; export the segment with action create first"
            )));
        }
    }
    Ok(())
}

/// Deletes the oldest list of ours (by prefix) to make room for `list_id`.
async fn evict_oldest(spotler: &SpotlerDestination, list_id: &str) -> Result<(), CallError> {
    let lists = spotler.client.templists().await?;
    let Some(oldest) = oldest_of_ours(&lists, &spotler.templist_prefix, list_id) else {
        return Err(CallError::Permanent(format!(
            "spotler create_templist: the account holds the maximum of 30 temporary lists and none of them was created by contact-sync (prefix `{}`), so none may be deleted",
            spotler.templist_prefix
        )));
    };
    let oldest = oldest.external_temporary_list_id.clone();
    spotler.client.delete_templist(&oldest).await?;
    tracing::warn!(
        deleted = %oldest,
        created = %list_id,
        "Spotler temporary lists were at the cap; deleted our oldest list to make room."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(id: &str, created_at: Option<&str>) -> TempList {
        TempList {
            external_temporary_list_id: id.to_owned(),
            name: id.to_owned(),
            created_at: created_at.map(str::to_owned),
            kind: Some("API".to_owned()),
        }
    }

    #[test]
    fn the_oldest_list_with_our_prefix_is_chosen() {
        let lists = [
            list("other-1", Some("2026-01-01T00:00:00.000Z")),
            list("sy-b", Some("2026-02-01T00:00:00.000Z")),
            list("sy-a", Some("2026-01-15T00:00:00.000Z")),
            list("sy-c", None),
        ];
        assert_eq!(
            oldest_of_ours(&lists, "sy-", "sy-new").map(|l| l.external_temporary_list_id.as_str()),
            Some("sy-a")
        );
        assert_eq!(
            oldest_of_ours(&lists, "sy-", "sy-a").map(|l| l.external_temporary_list_id.as_str()),
            Some("sy-b")
        );
        assert!(oldest_of_ours(&lists, "zz-", "x").is_none());
    }

    #[test]
    fn equal_times_keep_the_listed_order() {
        let lists = [
            list("sy-1", Some("2026-01-01T00:00:00.000Z")),
            list("sy-2", Some("2026-01-01T00:00:00.000Z")),
        ];
        assert_eq!(
            oldest_of_ours(&lists, "sy-", "x").map(|l| l.external_temporary_list_id.as_str()),
            Some("sy-1")
        );
    }
}
