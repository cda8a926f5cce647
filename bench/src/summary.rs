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

/// Every figure of a run, by key, in the order they were added for the table.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    figures: Vec<(String, Figure)>,
}

impl Summary {
    /// Adds (or replaces) a figure.
    pub(crate) fn add(&mut self, key: &str, figure: Figure) {
        self.figures.retain(|(k, _)| k != key);
        self.figures.push((key.to_owned(), figure));
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
    fn the_table_marks_missed_goals() {
        let mut summary = Summary::default();
        summary.add("rss_idle_mib", Figure::at_most(25.0, 20.0, "MiB"));
        summary.add("rss_idle_mib", Figure::at_most(12.5, 20.0, "MiB"));
        let table = summary.table();
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.contains("12.500") && table.contains("met"), "{table}");
    }
}
