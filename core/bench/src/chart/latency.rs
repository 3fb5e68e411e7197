//! The latency panels: throughput and raise latency against the number of UDP subscribers
//! (scenario 9), and raise latency beside a dead destination (scenario 15).

use super::{decade_bounds, err, si, Area, Series, EVID, OPENSIPS, P50, P99, P999, PERCENTILES};
use crate::Row;
use plotters::prelude::*;

/// Scenario 9's rows as (x position, subscribers, row); x is the index (1, 4, 16, 64 evenly).
fn scaling_rows(rows: &[Row]) -> Vec<(f64, f64, &Row)> {
    rows.iter()
        .filter(|r| r.id.starts_with("9/"))
        .filter_map(|r| r.id[2..].parse::<f64>().ok().map(|s| (s, r)))
        .enumerate()
        .map(|(i, (s, r))| (i as f64, s, r))
        .collect()
}

/// Label of x position `x` on the scaling panels.
fn subs_label(pts: &[(f64, f64, &Row)], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < pts.len() {
        format!("{:.0}", pts[i as usize].1)
    } else {
        String::new()
    }
}

/// Lines: events/s and datagrams/s against the number of subscribers (log-log).
pub(super) fn scaling(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let pts = scaling_rows(rows);
    if pts.is_empty() {
        return Ok(());
    }
    let ev: Vec<(f64, f64)> = pts.iter().map(|(x, _, r)| (*x, r.value)).collect();
    let dg: Vec<(f64, f64)> = pts.iter().map(|(x, s, r)| (*x, r.value * *s)).collect();
    let min = ev.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let max = dg.iter().map(|p| p.1).fold(1.0, f64::max);
    let (lo, hi) = decade_bounds(min, max);
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput vs UDP subscribers", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3f64..(pts.len() as f64 - 0.7), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("UDP subscribers per event")
        .x_labels(pts.len())
        .y_desc("per second (log)")
        .y_label_formatter(&|y| si(*y))
        .x_label_formatter(&|x| subs_label(&pts, *x))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(ev.clone(), EVID.stroke_width(2)))
        .map_err(err)?
        .label("events raised/s")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], EVID.stroke_width(2)));
    chart
        .draw_series(ev.iter().map(|p| Circle::new(*p, 4, EVID.filled())))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(dg.clone(), OPENSIPS.stroke_width(2)))
        .map_err(err)?
        .label("datagrams delivered/s")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], OPENSIPS.stroke_width(2)));
    chart
        .draw_series(dg.iter().map(|p| Circle::new(*p, 4, OPENSIPS.filled())))
        .map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Lines: raise latency percentiles against the number of subscribers (log-log).
pub(super) fn latency(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let pts = scaling_rows(rows);
    if pts.is_empty() {
        return Ok(());
    }
    let series: [Series; 3] = [
        (
            "p50",
            P50,
            pts.iter()
                .map(|(x, _, r)| (*x, r.p50_ns.unwrap_or(1) as f64))
                .collect(),
        ),
        (
            "p99",
            P99,
            pts.iter()
                .map(|(x, _, r)| (*x, r.p99_ns.unwrap_or(1) as f64))
                .collect(),
        ),
        (
            "p99.9",
            P999,
            pts.iter()
                .map(|(x, _, r)| (*x, r.p999_ns.unwrap_or(1) as f64))
                .collect(),
        ),
    ];
    let all = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (min, max) = all.fold((f64::MAX, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = decade_bounds(min, max);
    let mut chart = ChartBuilder::on(area)
        .caption("Raise latency (in-process raiser)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3f64..(pts.len() as f64 - 0.7), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("UDP subscribers per event")
        .x_labels(pts.len())
        .y_desc("ns per raise (log)")
        .y_label_formatter(&|y| si(*y))
        .x_label_formatter(&|x| subs_label(&pts, *x))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (name, color, pts) in series {
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Grouped bars: raise latency p50/p99/p99.9 with one live UDP subscriber, alone and beside each
/// dead destination (log scale).
pub(super) fn dead_latency(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let cases: Vec<&Row> = rows.iter().filter(|r| r.id.starts_with("15/")).collect();
    if cases.is_empty() {
        return Ok(());
    }
    let values = |r: &Row| [r.p50_ns, r.p99_ns, r.p999_ns].map(|v| v.unwrap_or(1).max(1) as f64);
    let all = cases.iter().flat_map(|r| values(r));
    let (min, max) = all.fold((f64::MAX, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = decade_bounds(min, max * 2.0);
    let n = cases.len();
    fn label(id: &str) -> &str {
        match id {
            "15/live" => "live UDP alone",
            "15/rmq" => "+ dead RabbitMQ",
            "15/xmlrpc" => "+ dead XML-RPC",
            "15/tcp" => "+ dead TCP",
            other => other,
        }
    }
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Raise latency beside a dead destination (in-process)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                label(&cases[i as usize].id).to_string()
            } else {
                String::new()
            }
        })
        .y_desc("ns per raise (log)")
        .y_label_formatter(&|y| si(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let w = 0.26;
    for (k, (name, color)) in PERCENTILES.iter().enumerate() {
        let x0 = |i: usize| i as f64 - 1.5 * w + k as f64 * w;
        chart
            .draw_series(cases.iter().enumerate().map(|(i, r)| {
                Rectangle::new([(x0(i), lo), (x0(i) + w, values(r)[k])], color.filled())
            }))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart
            .draw_series(cases.iter().enumerate().map(|(i, r)| {
                Text::new(
                    si(values(r)[k]),
                    (x0(i), values(r)[k] * 1.15),
                    ("sans-serif", 11).into_font(),
                )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}
