//! A small reader of the Prometheus text exposition format: samples with labels and values,
//! and sums over them.

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Metric name (with any `_total`, `_bucket`, … suffix).
    pub(crate) name: String,
    /// Labels in order of appearance.
    pub(crate) labels: Vec<(String, String)>,
    /// The value.
    pub(crate) value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every sample in `text`. Comments, blank lines and lines that do not parse are skipped.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut chars = line.chars().peekable();
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c == '{' || c.is_whitespace() {
            break;
        }
        name.push(c);
        chars.next();
    }
    if name.is_empty() {
        return None;
    }
    let mut labels = Vec::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek() == Some(&'}') {
                chars.next();
                break;
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                key.push(c);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') || key.is_empty() {
                return None;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    let rest: String = chars.collect();
    let raw_value = rest.split_whitespace().next()?;
    let value = match raw_value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

/// The sum of the values of samples named `name` that pass `keep`.
pub(crate) fn sum(samples: &[Sample], name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP switchyard_messages_total Messages handled, by outcome.
# TYPE switchyard_messages_total counter
switchyard_messages_total{worker="contact-sync",type="contact.changed",outcome="ok"} 4
switchyard_messages_total{worker="contact-sync",type="contact.changed",outcome="retried"} 2
switchyard_messages_total{worker="contact-sync",type="unknown",outcome="dead_lettered"} 1
switchyard_dead_letters_total{worker="contact-sync",class="invalid"} 3 1700000000000
odd_labels{a = "x, \"y\" \\ z\n", b="}"} 2.5
plain 7
bad{unterminated="x} 1
inf_gauge +Inf
"#;

    #[test]
    fn parses_names_labels_and_values() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 7, "{samples:?}");
        let first = samples.first();
        assert_eq!(first.and_then(|s| s.label("outcome")), Some("ok"));
        assert_eq!(first.map(|s| s.value), Some(4.0));
        let odd = samples.iter().find(|s| s.name == "odd_labels");
        assert_eq!(odd.and_then(|s| s.label("a")), Some("x, \"y\" \\ z\n"));
        assert_eq!(odd.and_then(|s| s.label("b")), Some("}"));
        assert_eq!(
            samples.iter().find(|s| s.name == "plain").map(|s| s.labels.len()),
            Some(0)
        );
        assert_eq!(
            samples.iter().find(|s| s.name == "inf_gauge").map(|s| s.value),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn ignores_the_timestamp() {
        let samples = parse(TEXT);
        let dead = samples.iter().find(|s| s.name == "switchyard_dead_letters_total");
        assert_eq!(dead.map(|s| s.value), Some(3.0));
    }

    #[test]
    fn sums_matching_samples_only() {
        let samples = parse(TEXT);
        let handled = sum(&samples, "switchyard_messages_total", |s| {
            matches!(s.label("outcome"), Some("ok" | "dead_lettered"))
        });
        assert_eq!(handled, 5.0);
        assert_eq!(sum(&samples, "switchyard_messages_total", |_| true), 7.0);
        assert_eq!(sum(&samples, "missing_total", |_| true), 0.0);
    }
}
