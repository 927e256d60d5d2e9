//! The end of `perf/gateway.sh`: from the run's measurement lines, the ratios issue 4 sets goals on,
//! as one JSON line and a table.
//!
//! Why computed here: the goals are ratios between lines of the same run (gateway over nginx,
//! JWT over unauthenticated, added p99 over direct), and a ratio from a run with failed requests
//! or a fixed rate the target could not keep up with is not the figure it seems, so the summary
//! says so beside the table instead of leaving it to whoever reads the numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

/// The ratios of one run and what to be wary of when reading them.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    rows: Vec<Row>,
    figures: Map<String, Value>,
    warnings: Vec<String>,
}

#[derive(Debug)]
struct Row {
    figure: String,
    value: String,
    goal: &'static str,
    met: Option<bool>,
}

/// Below this share of the offered rate, a fixed-rate run did not measure what it claims.
const KEPT_UP: f64 = 0.95;

type Lines = BTreeMap<(String, String), Value>;

/// Reads the measurement lines in `output` (anything that is not a JSON object with `measurement`
/// and `target` is skipped; a later line for the same pair replaces an earlier one).
pub(crate) fn summarize(output: &str) -> Summary {
    let mut lines = Lines::new();
    for value in output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
    {
        if let (Some(measurement), Some(target)) = (value["measurement"].as_str(), value["target"].as_str()) {
            lines.insert((measurement.to_owned(), target.to_owned()), value.clone());
        }
    }
    let mut summary = Summary::default();
    summary.warn_about(&lines);
    summary.saturation(&lines);
    summary.fixed_rate(&lines);
    summary
}

fn field(lines: &Lines, measurement: &str, target: &str, key: &str) -> Option<f64> {
    let line = lines.get(&(measurement.to_owned(), target.to_owned()))?;
    if line.get("skipped").is_some() {
        return None;
    }
    line[key].as_f64()
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    match (numerator, denominator) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "not measured".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Summary {
    fn row(
        &mut self,
        key: &str,
        figure: String,
        value: Option<f64>,
        decimals: usize,
        goal: &'static str,
        met: Option<bool>,
    ) {
        self.figures
            .insert(key.to_owned(), value.map_or(Value::Null, Value::from));
        self.rows.push(Row {
            figure,
            value: show(value, decimals),
            goal,
            met,
        });
    }

    fn warn_about(&mut self, lines: &Lines) {
        for ((measurement, target), line) in lines {
            if let Some(reason) = line["skipped"].as_str() {
                self.warnings
                    .push(format!("{measurement} {target}: skipped ({reason})"));
                continue;
            }
            let failed = line["failed"].as_u64().unwrap_or(0);
            if failed > 0 {
                let kinds = line.get("failures").map(Value::to_string).unwrap_or_default();
                self.warnings.push(format!(
                    "{measurement} {target}: {failed} failed requests {kinds}"
                ));
            }
            if let (Some(offered), Some(rps)) = (line["offered_rps"].as_f64(), line["rps"].as_f64())
                && rps < offered * KEPT_UP
            {
                self.warnings.push(format!(
                    "{measurement} {target}: {rps:.0} req/s answered of {offered:.0} offered: it did not keep up, its latencies are queueing"
                ));
            }
        }
    }

    fn saturation(&mut self, lines: &Lines) {
        let rps = |target: &str| field(lines, "saturation", target, "rps");
        let (direct, nginx, gateway) = (rps("direct"), rps("nginx"), rps("gateway"));
        let (public, jwt) = (rps("platform-public"), rps("platform-jwt"));
        for (target, value) in [("direct", direct), ("nginx", nginx), ("gateway", gateway)] {
            let key = format!("saturation_rps_{target}");
            self.row(&key, format!("saturation req/s, {target}"), value, 0, "", None);
        }
        let over_nginx = ratio(gateway, nginx);
        self.row(
            "gateway_over_nginx",
            "gateway / nginx".into(),
            over_nginx,
            2,
            ">= 1.00",
            over_nginx.map(|r| r >= 1.0),
        );
        self.row(
            "nginx_over_direct",
            "nginx / direct".into(),
            ratio(nginx, direct),
            2,
            "",
            None,
        );
        self.row(
            "gateway_over_direct",
            "gateway / direct".into(),
            ratio(gateway, direct),
            2,
            "",
            None,
        );
        for (target, value) in [("platform-public", public), ("platform-jwt", jwt)] {
            let key = format!("saturation_rps_{}", target.replace('-', "_"));
            self.row(&key, format!("saturation req/s, {target}"), value, 0, "", None);
        }
        let jwt_ratio = ratio(jwt, public);
        self.row(
            "jwt_over_unauthenticated",
            "JWT / unauthenticated (platform)".into(),
            jwt_ratio,
            2,
            ">= 0.80",
            jwt_ratio.map(|r| r >= 0.8),
        );
    }

    fn fixed_rate(&mut self, lines: &Lines) {
        let at = |target: &str, key: &str| field(lines, "fixed_rate", target, key);
        let offered = ["direct", "nginx", "gateway"]
            .iter()
            .find_map(|t| at(t, "offered_rps"));
        let rate = offered.map_or_else(|| "fixed rate".to_owned(), |r| format!("at {r:.0} req/s"));
        for target in ["direct", "nginx", "gateway"] {
            let (p50, p99) = (at(target, "p50_ms"), at(target, "p99_ms"));
            self.figures.insert(
                format!("fixed_rate_p50_ms_{target}"),
                p50.map_or(Value::Null, Value::from),
            );
            self.row(
                &format!("fixed_rate_p99_ms_{target}"),
                format!("{rate}, {target}: p99 ms (p50 {})", show(p50, 3)),
                p99,
                3,
                "",
                None,
            );
        }
        let direct = at("direct", "p99_ms");
        let added = |target: &str| at(target, "p99_ms").zip(direct).map(|(p99, direct)| p99 - direct);
        self.row(
            "added_p99_ms_nginx",
            format!("{rate}, added p99 ms, nginx"),
            added("nginx"),
            3,
            "",
            None,
        );
        let gateway = added("gateway");
        self.row(
            "added_p99_ms_gateway",
            format!("{rate}, added p99 ms, gateway"),
            gateway,
            3,
            "< 1.000",
            gateway.map(|ms| ms < 1.0),
        );
    }

    /// The figures as one JSON line: `{"summary": {...}, "warnings": [...]}`.
    pub(crate) fn json(&self) -> Value {
        json!({"summary": self.figures, "warnings": self.warnings})
    }

    /// The figures as a Markdown table, then the warnings.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from("| figure | value | goal | verdict |\n| --- | ---: | --- | --- |\n");
        for row in &self.rows {
            let verdict = match row.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "",
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "| {} | {} | {} | {verdict} |",
                row.figure, row.value, row.goal
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"noise that is not JSON
{"measurement":"saturation","target":"direct","rps":100000.0,"failed":0}
{"measurement":"saturation","target":"nginx","rps":40000.0,"failed":0}
{"measurement":"saturation","target":"gateway","rps":50000.0,"failed":3,"failures":{"status 502":3}}
{"measurement":"saturation","target":"platform-public","rps":30000.0,"failed":0}
{"measurement":"saturation","target":"platform-jwt","skipped":"gateway.routes[].auth is not in this build"}
{"measurement":"fixed_rate","target":"direct","rps":10000.0,"offered_rps":10000.0,"p50_ms":0.1,"p99_ms":0.4,"failed":0}
{"measurement":"fixed_rate","target":"nginx","rps":9990.0,"offered_rps":10000.0,"p50_ms":0.2,"p99_ms":0.9,"failed":0}
{"measurement":"fixed_rate","target":"gateway","rps":8000.0,"offered_rps":10000.0,"p50_ms":0.3,"p99_ms":1.6,"failed":0}
"#;

    #[test]
    fn ratios_are_taken_between_the_lines_of_the_run() {
        let summary = summarize(RUN);
        let figures = &summary.json()["summary"];
        assert_eq!(figures["gateway_over_nginx"], 1.25);
        assert_eq!(figures["nginx_over_direct"], 0.4);
        assert_eq!(figures["gateway_over_direct"], 0.5);
        assert!((figures["added_p99_ms_gateway"].as_f64().unwrap_or_default() - 1.2).abs() < 1e-9);
        assert!((figures["added_p99_ms_nginx"].as_f64().unwrap_or_default() - 0.5).abs() < 1e-9);
        assert_eq!(figures["fixed_rate_p50_ms_gateway"], 0.3);
    }

    #[test]
    fn a_skipped_measurement_leaves_its_ratio_unmeasured_and_is_warned_about() {
        let summary = summarize(RUN);
        assert_eq!(summary.json()["summary"]["jwt_over_unauthenticated"], Value::Null);
        let table = summary.table();
        assert!(
            table.contains("| JWT / unauthenticated (platform) | not measured | >= 0.80 |  |"),
            "{table}"
        );
        assert!(
            table.contains("platform-jwt: skipped (gateway.routes[].auth is not in this build)"),
            "{table}"
        );
    }

    #[test]
    fn goals_get_a_verdict_and_doubtful_runs_a_warning() {
        let table = summarize(RUN).table();
        assert!(
            table.contains("| gateway / nginx | 1.25 | >= 1.00 | met |"),
            "{table}"
        );
        assert!(
            table.contains("added p99 ms, gateway | 1.200 | < 1.000 | NOT met |"),
            "{table}"
        );
        assert!(table.contains("saturation gateway: 3 failed requests"), "{table}");
        assert!(
            table.contains("fixed_rate gateway: 8000 req/s answered of 10000 offered"),
            "{table}"
        );
        assert!(!table.contains("fixed_rate nginx: 9990"), "{table}");
    }

    #[test]
    fn a_later_line_for_the_same_target_replaces_the_earlier_one() {
        let run = format!(
            "{RUN}{}",
            r#"{"measurement":"saturation","target":"gateway","rps":20000.0,"failed":0}"#
        );
        assert_eq!(summarize(&run).json()["summary"]["gateway_over_nginx"], 0.5);
    }
}
