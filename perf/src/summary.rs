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

/// Saturation req/s of each target by round: its `round` label, or else its place among the
/// target's lines.
type Rounds = BTreeMap<String, BTreeMap<i64, f64>>;

/// Reads the measurement lines in `output` (anything that is not a JSON object with `measurement`
/// and `target` is skipped). A later line for the same pair replaces an earlier one, except that
/// every saturation line counts as a round of its target: `perf/gateway.sh` measures nginx and
/// the gateway in `PERF_ROUNDS` alternating rounds, and their ratio is the median of the rounds'
/// ratios (the gateway's line over nginx's of the same `round`), because one pair of runs on a
/// shared machine moves by ±20%. Every line is checked for failures, whether it was replaced or not.
pub(crate) fn summarize(output: &str) -> Summary {
    let mut lines = Lines::new();
    let mut rounds = Rounds::new();
    let mut all = Vec::new();
    for value in output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
    {
        if let (Some(measurement), Some(target)) = (value["measurement"].as_str(), value["target"].as_str()) {
            if let (Some(rps), "saturation") = (value["rps"].as_f64(), measurement)
                && value.get("skipped").is_none()
            {
                let of_target = rounds.entry(target.to_owned()).or_default();
                let place = i64::try_from(of_target.len()).unwrap_or(i64::MAX);
                of_target.insert(value["round"].as_i64().unwrap_or(place), rps);
            }
            lines.insert((measurement.to_owned(), target.to_owned()), value.clone());
            all.push(value);
        }
    }
    let mut summary = Summary::default();
    summary.warn_about(&all);
    summary.saturation(&lines, &rounds);
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

/// The req/s of each of a target's rounds.
fn rates(rounds: &BTreeMap<i64, f64>) -> Vec<f64> {
    rounds.values().copied().collect()
}

/// `measured` over `baseline` for each round both have (paired by round).
fn round_ratios(baseline: &BTreeMap<i64, f64>, measured: &BTreeMap<i64, f64>) -> Vec<f64> {
    baseline
        .iter()
        .filter_map(|(round, base)| ratio(measured.get(round).copied(), Some(*base)))
        .collect()
}

/// What a figure taken over `rounds` alternating rounds says of it (nothing for one).
fn rounds_note(rounds: usize) -> String {
    match rounds {
        0 | 1 => String::new(),
        n => format!(" (median of {n} alternating rounds)"),
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        len if len % 2 == 1 => Some(sorted[middle]),
        _ => Some(f64::midpoint(sorted[middle - 1], sorted[middle])),
    }
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

    fn warn_about(&mut self, lines: &[Value]) {
        for line in lines {
            let measurement = line["measurement"].as_str().unwrap_or_default();
            let target = line["target"].as_str().unwrap_or_default();
            let target = match line["round"].as_i64() {
                Some(round) => format!("{target} (round {round})"),
                None => target.to_owned(),
            };
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

    fn saturation(&mut self, lines: &Lines, rounds: &Rounds) {
        let rps = |target: &str| field(lines, "saturation", target, "rps");
        let direct = rps("direct");
        let empty = BTreeMap::new();
        let of_rounds = |target: &str| rounds.get(target).unwrap_or(&empty);
        let (nginx, gateway) = (of_rounds("nginx"), of_rounds("gateway"));
        let per_round = round_ratios(nginx, gateway);
        let median_of = rounds_note(per_round.len());
        self.row(
            "saturation_rps_direct",
            "saturation req/s, direct".into(),
            direct,
            0,
            "",
            None,
        );
        let (nginx, gateway) = (median(&rates(nginx)), median(&rates(gateway)));
        for (target, value) in [("nginx", nginx), ("gateway", gateway)] {
            let figure = format!("saturation req/s, {target}{median_of}");
            self.row(&format!("saturation_rps_{target}"), figure, value, 0, "", None);
        }
        self.alternating(
            ("gateway_over_nginx", "gateway / nginx"),
            &per_round,
            (">= 1.00", 1.0),
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
        // The platform without and with a token, in alternating rounds too.
        let (public, jwt) = (of_rounds("platform-public"), of_rounds("platform-jwt"));
        let per_round = round_ratios(public, jwt);
        let median_of = rounds_note(per_round.len());
        for (target, value) in [("platform-public", public), ("platform-jwt", jwt)] {
            let key = format!("saturation_rps_{}", target.replace('-', "_"));
            let figure = format!("saturation req/s, {target}{median_of}");
            self.row(&key, figure, median(&rates(value)), 0, "", None);
        }
        self.alternating(
            ("jwt_over_unauthenticated", "JWT / unauthenticated (platform)"),
            &per_round,
            (">= 0.80", 0.8),
        );
    }

    /// The row of a ratio taken in alternating rounds (`per_round`, one ratio each): their median
    /// against `goal` (met at `threshold` or above), and with more than one round the lowest and
    /// highest, also as `<key>_rounds` in the JSON.
    fn alternating(&mut self, (key, figure): (&str, &str), per_round: &[f64], goal: (&'static str, f64)) {
        let (goal, threshold) = goal;
        let value = median(per_round);
        let note = rounds_note(per_round.len());
        self.row(
            key,
            format!("{figure}{note}"),
            value,
            2,
            goal,
            value.map(|r| r >= threshold),
        );
        if per_round.len() > 1 {
            let (lowest, highest) = per_round
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), r| {
                    (low.min(*r), high.max(*r))
                });
            self.figures
                .insert(format!("{key}_rounds"), Value::from(per_round.to_vec()));
            self.rows.push(Row {
                figure: format!("{figure}, lowest and highest round"),
                value: format!("{lowest:.2} to {highest:.2}"),
                goal: "",
                met: None,
            });
        }
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
    fn alternating_rounds_give_the_median_of_their_ratios_and_its_spread() {
        let rounds = [(40000.0, 50000.0), (50000.0, 40000.0), (40000.0, 44000.0)]
            .iter()
            .enumerate()
            .map(|(round, (nginx, gateway))| {
                format!(
                    "{{\"measurement\":\"saturation\",\"target\":\"nginx\",\"round\":{round},\"rps\":{nginx},\"failed\":0}}\n\
                     {{\"measurement\":\"saturation\",\"target\":\"gateway\",\"round\":{round},\"rps\":{gateway},\"failed\":0}}\n"
                )
            })
            .collect::<String>();
        let run = RUN
            .lines()
            .filter(|line| !line.contains(r#""target":"nginx""#) && !line.contains(r#""target":"gateway""#))
            .map(|line| format!("{line}\n"))
            .collect::<String>()
            + &rounds;
        let summary = summarize(&run);
        let figures = &summary.json()["summary"];
        // Ratios 1.25, 0.8 and 1.1: the median is 1.1, whatever the medians of the rates say.
        assert!((figures["gateway_over_nginx"].as_f64().unwrap_or_default() - 1.1).abs() < 1e-9);
        assert_eq!(figures["saturation_rps_nginx"], 40000.0);
        assert_eq!(figures["saturation_rps_gateway"], 44000.0);
        assert_eq!(
            figures["gateway_over_nginx_rounds"].as_array().map(Vec::len),
            Some(3)
        );
        let table = summary.table();
        assert!(
            table.contains("| gateway / nginx (median of 3 alternating rounds) | 1.10 | >= 1.00 | met |"),
            "{table}"
        );
        assert!(
            table.contains("| gateway / nginx, lowest and highest round | 0.80 to 1.25 |"),
            "{table}"
        );

        // A failure in an early round is reported, and rounds pair by their label.
        let run = run.replacen(
            r#""target":"nginx","round":0,"rps":40000,"failed":0"#,
            r#""target":"nginx","round":0,"rps":40000,"failed":2"#,
            1,
        );
        let run: String = run
            .lines()
            .filter(|line| !line.contains(r#""target":"gateway","round":1"#))
            .map(|line| format!("{line}\n"))
            .collect();
        let summary = summarize(&run);
        assert!(
            summary
                .table()
                .contains("saturation nginx (round 0): 2 failed requests"),
            "{}",
            summary.table()
        );
        // Rounds 0 and 2 only: ratios 1.25 and 1.1.
        let figures = &summary.json()["summary"];
        assert!((figures["gateway_over_nginx"].as_f64().unwrap_or_default() - 1.175).abs() < 1e-9);
    }

    #[test]
    fn the_jwt_ratio_is_the_median_of_its_alternating_rounds() {
        let rounds = [(40000.0, 30000.0), (30000.0, 30000.0), (36000.0, 32400.0)]
            .iter()
            .enumerate()
            .map(|(round, (public, jwt))| {
                format!(
                    "{{\"measurement\":\"saturation\",\"target\":\"platform-public\",\"round\":{round},\"rps\":{public},\"failed\":0}}\n\
                     {{\"measurement\":\"saturation\",\"target\":\"platform-jwt\",\"round\":{round},\"rps\":{jwt},\"failed\":0}}\n"
                )
            })
            .collect::<String>();
        let summary = summarize(&rounds);
        let figures = &summary.json()["summary"];
        // Ratios 0.75, 1.0 and 0.9: the median is 0.9.
        assert!((figures["jwt_over_unauthenticated"].as_f64().unwrap_or_default() - 0.9).abs() < 1e-9);
        assert_eq!(figures["saturation_rps_platform_public"], 36000.0);
        assert_eq!(
            figures["jwt_over_unauthenticated_rounds"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        let table = summary.table();
        assert!(
            table.contains(
                "| JWT / unauthenticated (platform) (median of 3 alternating rounds) | 0.90 | >= 0.80 | met |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| JWT / unauthenticated (platform), lowest and highest round | 0.75 to 1.00 |"),
            "{table}"
        );
    }

    #[test]
    fn the_median_takes_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
