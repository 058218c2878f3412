//! `report`: the JSON lines of a bench run to a markdown table and one
//! latency-percentile plot (SVG) per case. Runs are grouped by their
//! `case`; within a case, the first `label` seen is the subject and every
//! other label (the fixed responder, a peer) is compared with it.

use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

struct Run {
    label: String,
    throughput: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    errors: f64,
    ok: f64,
    /// Lookups: connections served of those opened.
    served: Option<(f64, f64)>,
    /// (percentile, latency µs)
    curve: Vec<(f64, f64)>,
}

fn run_of(v: &Value) -> Option<(String, Run)> {
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let case = v["case"].as_str()?.to_string();
    let curve = v["latency_us_percentiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let run = Run {
        label: v["label"].as_str().unwrap_or("?").to_string(),
        throughput: num("throughput_per_s"),
        p50: num("latency_us_p50"),
        p99: num("latency_us_p99"),
        p999: num("latency_us_p99_9"),
        max: num("latency_us_max"),
        errors: num("errors_total"),
        ok: num("ok_total"),
        served: v["connections_served"]
            .as_f64()
            .map(|s| (s, num("connections"))),
        curve,
    };
    Some((case, run))
}

/// Writes `table.md` and `plot-<case>.svg` under `out`; returns the table.
pub fn write(input: &Path, out: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    // Cases in the order they first appear, runs in the order they ran.
    let mut order: Vec<String> = Vec::new();
    let mut cases: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some((case, run)) = run_of(&v) {
            if !cases.contains_key(&case) {
                order.push(case.clone());
            }
            cases.entry(case).or_default().push(run);
        }
    }
    if order.is_empty() {
        return Err(format!("{}: no run with a case", input.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut md = String::from(
        "| case | target | lookups/s | p50 µs | p99 µs | p99.9 µs | max µs | errors | connections served | vs first: throughput | vs first: p99 |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for case in &order {
        let runs = &cases[case];
        let first = &runs[0];
        for r in runs {
            let ratio = |a: f64, b: f64| {
                if b > 0.0 {
                    format!("{:.2}", a / b)
                } else {
                    "-".into()
                }
            };
            let _ = writeln!(
                md,
                "| {case} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} of {} | {} | {} | {} |",
                r.label,
                r.throughput,
                r.p50,
                r.p99,
                r.p999,
                r.max,
                r.errors,
                r.ok + r.errors,
                r.served
                    .map_or("-".into(), |(s, of)| format!("{s:.0} of {of:.0}")),
                ratio(r.throughput, first.throughput),
                ratio(r.p99, first.p99),
            );
        }
        plot(
            case,
            runs,
            &out.join(format!("plot-{}.svg", file_name(case))),
        )?;
    }
    std::fs::write(out.join("table.md"), &md).map_err(|e| e.to_string())?;
    Ok(md)
}

fn file_name(case: &str) -> String {
    case.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// x: percentile on a "nines" scale, log10(1 / (1 - q)); y: log latency.
fn plot(case: &str, runs: &[Run], path: &Path) -> Result<(), String> {
    let nines = |p: f64| -(1.0 - (p / 100.0).min(0.99999)).log10();
    let points: Vec<(&str, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| {
            let pts = r
                .curve
                .iter()
                .map(|&(p, us)| (nines(p), us.max(1.0)))
                .collect();
            (r.label.as_str(), pts)
        })
        .collect();
    let y_max = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(10.0, f64::max);
    let y_min = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(y_max, f64::min);
    let err = |e: &dyn std::fmt::Display| format!("plot {case}: {e}");
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("latency by percentile: {case}"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..5.0f64, (y_min * 0.8..y_max * 1.25).log_scale())
        .map_err(|e| err(&e))?;
    let x_label = |x: &f64| {
        let p = 100.0 * (1.0 - 10f64.powf(-*x));
        if *x >= 4.99 {
            "max".to_string()
        } else {
            format!("{p}")
        }
    };
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&x_label)
        .y_labels(12)
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .x_desc("percentile")
        .y_desc("latency µs (log)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (label, pts)) in points.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_compares_with_the_first_label_and_plots_each_case() {
        let dir = std::env::temp_dir().join(format!("rocketns-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |label: &str, thr: f64, p99: f64, served: u32| {
            format!(
                r#"{{"case":"lookup 100x1","label":"{label}","throughput_per_s":{thr},"latency_us_p50":10,"latency_us_p99":{p99},"latency_us_p99_9":30,"latency_us_max":40,"errors_total":0,"ok_total":100,"connections":100,"connections_served":{served},"latency_us_percentiles":[[50,10],[99,{p99}],[100,40]]}}"#
            )
        };
        let input = dir.join("runs.jsonl");
        let text = format!(
            "noise\n{}\n{}\n",
            line("rocketns", 300.0, 20.0, 100),
            line("peer", 100.0, 60.0, 97)
        );
        std::fs::write(&input, text).unwrap();
        let md = write(&input, &dir).unwrap();
        assert!(
            md.contains(
                "| lookup 100x1 | rocketns | 300 | 10 | 20 | 30 | 40 | 0 of 100 | 100 of 100 | 1.00 | 1.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| lookup 100x1 | peer | 100 | 10 | 60 | 30 | 40 | 0 of 100 | 97 of 100 | 0.33 | 3.00 |"
            ),
            "{md}"
        );
        let svg = std::fs::read_to_string(dir.join("plot-lookup-100x1.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("rocketns") && svg.contains("peer"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
