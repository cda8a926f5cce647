//! The figures: `target/bench/summary.json` (DESIGN.md section 10: one key per figure, each
//! `{"value", "goal", "unit", "higher_is_better"}`) and the table printed on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

/// One figure with its goal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Figure {
    /// The measured value.
    pub(crate) value: f64,
    /// The goal it is judged against.
    pub(crate) goal: f64,
    /// Unit, e.g. `msg/s`, `ms`, `MiB`, `ratio`.
    pub(crate) unit: &'static str,
    /// Whether a value above the goal meets it (else a value at or below does).
    pub(crate) higher_is_better: bool,
}

impl Figure {
    /// A figure that meets its goal at or above it.
    pub(crate) fn at_least(value: f64, goal: f64, unit: &'static str) -> Self {
        Self {
            value,
            goal,
            unit,
            higher_is_better: true,
        }
    }

    /// A figure that meets its goal at or below it.
    pub(crate) fn at_most(value: f64, goal: f64, unit: &'static str) -> Self {
        Self {
            value,
            goal,
            unit,
            higher_is_better: false,
        }
    }

    /// Whether the goal is met.
    pub(crate) fn met(&self) -> bool {
        if self.higher_is_better {
            self.value >= self.goal
        } else {
            self.value <= self.goal
        }
    }
}

/// Every figure of a run, by key, in the order they were added for the table, and the floor
/// relay's rate each time it was measured: a rate is divided by the floors measured just
/// before and just after it, because the machine's speed drifts during a run.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    figures: Vec<(String, Figure)>,
    /// The floor relay's rates, in the order they were measured.
    floors: Vec<f64>,
    /// For each rate added with [`Summary::add_rate`], how many floors were measured before it.
    rates: Vec<(String, usize)>,
}

impl Summary {
    /// Adds (or replaces) a figure.
    pub(crate) fn add(&mut self, key: &str, figure: Figure) {
        self.figures.retain(|(k, _)| k != key);
        self.figures.push((key.to_owned(), figure));
    }

    /// Records a measurement of the floor relay's rate.
    pub(crate) fn add_floor(&mut self, relay_msgs_per_s: f64) {
        self.floors.push(relay_msgs_per_s);
    }

    /// Adds a rate figure that is judged against the floors measured around it.
    pub(crate) fn add_rate(&mut self, key: &str, figure: Figure) {
        self.add(key, figure);
        self.rates.retain(|(k, _)| k != key);
        self.rates.push((key.to_owned(), self.floors.len()));
    }

    /// Whether a rate was added since the floor was last measured (or none was measured yet),
    /// so the next rate has no floor right before it.
    pub(crate) fn floor_is_stale(&self) -> bool {
        self.floors.is_empty() || self.rates.iter().any(|(_, before)| *before == self.floors.len())
    }

    /// Every floor measured so far, in order.
    pub(crate) fn floors(&self) -> &[f64] {
        &self.floors
    }

    /// The floors measured just before and just after the rate `key` (either may be missing:
    /// no floor before it, or none measured after it yet).
    pub(crate) fn floors_around(&self, key: &str) -> (Option<f64>, Option<f64>) {
        let Some((_, before)) = self.rates.iter().find(|(k, _)| k == key) else {
            return (None, None);
        };
        let previous = before.checked_sub(1).and_then(|i| self.floors.get(i)).copied();
        (previous, self.floors.get(*before).copied())
    }

    /// A figure by key.
    pub(crate) fn get(&self, key: &str) -> Option<Figure> {
        self.figures.iter().find(|(k, _)| k == key).map(|(_, f)| *f)
    }

    /// The JSON object of DESIGN.md section 10.
    pub(crate) fn to_json(&self) -> Result<String> {
        let map: BTreeMap<&str, Figure> = self.figures.iter().map(|(k, f)| (k.as_str(), *f)).collect();
        Ok(serde_json::to_string_pretty(&map)?)
    }

    /// Writes the JSON to `path`.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()? + "\n").with_context(|| format!("cannot write {}", path.display()))
    }

    /// The table for stdout: figure, value, goal, unit and whether the goal is met.
    pub(crate) fn table(&self) -> String {
        let width = self.figures.iter().map(|(k, _)| k.len()).max().unwrap_or(6).max(6);
        let mut out = String::new();
        let _ignored = writeln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:<10}  goal",
            "figure", "value", "goal", "unit"
        );
        let _ignored = writeln!(out, "{}", "-".repeat(width + 48));
        for (key, figure) in &self.figures {
            let relation = if figure.higher_is_better { ">=" } else { "<=" };
            let verdict = if figure.met() { "met" } else { "MISSED" };
            let _ignored = writeln!(
                out,
                "{key:<width$}  {:>12}  {:>9} {relation}  {:<10}  {verdict}",
                format_value(figure.value),
                format_value(figure.goal),
                figure.unit,
            );
        }
        out
    }
}

/// Short, readable numbers: whole and large ones without decimals, small ones with three.
fn format_value(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_design_shape() {
        let mut summary = Summary::default();
        summary.add("throughput_ratio", Figure::at_least(0.61, 0.5, "ratio"));
        summary.add("quota_429s", Figure::at_most(0.0, 0.0, "count"));
        let json: serde_json::Value = serde_json::from_str(&summary.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            json["throughput_ratio"],
            serde_json::json!({"value": 0.61, "goal": 0.5, "unit": "ratio", "higher_is_better": true})
        );
        assert_eq!(json["quota_429s"]["higher_is_better"], serde_json::json!(false));
    }

    #[test]
    fn goals_are_judged_in_the_right_direction() {
        assert!(Figure::at_least(0.5, 0.5, "ratio").met());
        assert!(!Figure::at_least(0.49, 0.5, "ratio").met());
        assert!(Figure::at_most(20.0, 20.0, "MiB").met());
        assert!(!Figure::at_most(20.1, 20.0, "MiB").met());
    }

    #[test]
    fn a_rate_is_placed_between_the_floors_measured_around_it() {
        let mut summary = Summary::default();
        assert!(summary.floor_is_stale(), "no floor measured yet");
        summary.add_rate("early_msgs_per_s", Figure::at_least(1.0, 0.0, "msg/s"));
        summary.add_floor(100.0);
        assert!(!summary.floor_is_stale(), "nothing measured since the floor");
        summary.add_rate("first_msgs_per_s", Figure::at_least(50.0, 0.0, "msg/s"));
        assert!(summary.floor_is_stale());
        summary.add_floor(120.0);
        summary.add_rate("second_msgs_per_s", Figure::at_least(55.0, 0.0, "msg/s"));
        summary.add_rate("third_msgs_per_s", Figure::at_least(60.0, 0.0, "msg/s"));
        assert_eq!(summary.floors_around("early_msgs_per_s"), (None, Some(100.0)));
        assert_eq!(summary.floors_around("first_msgs_per_s"), (Some(100.0), Some(120.0)));
        assert_eq!(summary.floors_around("second_msgs_per_s"), (Some(120.0), None));
        assert_eq!(summary.floors_around("third_msgs_per_s"), (Some(120.0), None));
        assert_eq!(summary.floors_around("unknown"), (None, None));
        summary.add_floor(110.0);
        assert_eq!(summary.floors_around("third_msgs_per_s"), (Some(120.0), Some(110.0)));
        assert_eq!(summary.floors(), &[100.0, 120.0, 110.0]);
    }

    #[test]
    fn the_table_marks_missed_goals() {
        let mut summary = Summary::default();
        summary.add("rss_idle_mib", Figure::at_most(25.0, 20.0, "MiB"));
        summary.add("rss_idle_mib", Figure::at_most(12.5, 20.0, "MiB"));
        let table = summary.table();
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.contains("12.500") && table.contains("met"), "{table}");
    }
}
