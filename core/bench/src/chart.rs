//! `results.svg`: evid against OpenSIPS per scenario (log scale), memory, and how throughput and
//! raise latency scale with the number of subscribers.

use crate::Row;
use plotters::prelude::*;
use std::path::Path;

const EVID: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const OPENSIPS: RGBColor = RGBColor(0x75, 0x70, 0xb3);
const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);
const P50: RGBColor = RGBColor(0x1b, 0x9e, 0x77);
const P99: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const P999: RGBColor = RGBColor(0x75, 0x70, 0xb3);

/// A named, coloured line.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("chart: {e}")
}

/// Short x-axis labels for the throughput panel.
fn short(id: &str) -> &str {
    match id {
        "1" => "1 flatstore",
        "2" => "2 UDP",
        "2/raw" => "raw sendto",
        "3" => "3 flat+UDP",
        "4" => "4 +dead RMQ",
        "5" => "5 +dead XMLRPC",
        "6" => "6 +dead TCP",
        "7/1" => "7 MI 1 conn",
        "7/4" => "7 MI 4 conn",
        other => other,
    }
}

fn decade_bounds(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 10f64.powf(lo.max(1e-3).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn draw(path: &Path, rows: &[Row], title: &str) -> Result<(), String> {
    let root = SVGBackend::new(path, (1500, 1050)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(title, ("sans-serif", 26).into_font())
        .map_err(err)?;
    let (top, bottom) = root.split_vertically(560);
    throughput(&top, rows)?;
    let parts = bottom.split_evenly((1, 3));
    memory(&parts[0], rows)?;
    scaling(&parts[1], rows)?;
    latency(&parts[2], rows)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Bars: evid and OpenSIPS per throughput scenario, log scale.
fn throughput(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let bars: Vec<&Row> = rows
        .iter()
        .filter(|r| r.unit != "MB" && !r.id.starts_with('9'))
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars
        .iter()
        .map(|r| r.value.max(r.opensips.unwrap_or(0.0)))
        .fold(1.0, f64::max);
    let min = bars
        .iter()
        .flat_map(|r| [Some(r.value), r.opensips])
        .flatten()
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let (lo, hi) = decade_bounds(min, max * 3.0);
    let n = bars.len();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Throughput per scenario: evid vs OpenSIPS 3.6.8 (events/s; MI: requests/s; log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                short(&bars[i as usize].id).to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| si(*y))
        .y_desc("events/s (log)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let w = 0.36;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, r)| {
            r.opensips
                .map(|o| Rectangle::new([(i as f64 - w, lo), (i as f64, o)], OPENSIPS.filled()))
        }))
        .map_err(err)?
        .label("OpenSIPS 3.6.8 (issue 10)")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], OPENSIPS.filled()));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, r)| {
            let c = if r.opensips.is_some() { EVID } else { GREY };
            Rectangle::new([(i as f64, lo), (i as f64 + w, r.value)], c.filled())
        }))
        .map_err(err)?
        .label("evid (this run)")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], EVID.filled()));
    // Values and ratios above the evid bars.
    chart
        .draw_series(bars.iter().enumerate().map(|(i, r)| {
            let mut t = match r.ratio() {
                Some(x) => format!("{} ×{x:.1}", si(r.value)),
                None => si(r.value),
            };
            if r.failure.is_some() {
                t += " FAIL";
            }
            Text::new(
                t,
                (i as f64 - 0.05, r.value * 1.3),
                ("sans-serif", 13).into_font(),
            )
        }))
        .map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Bars: resident memory, evid vs OpenSIPS (MB, linear).
fn memory(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let Some(r) = rows.iter().find(|r| r.unit == "MB") else {
        return Ok(());
    };
    let o = r.opensips.unwrap_or(0.0);
    let hi = (r.value.max(o) * 1.2).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Resident memory, idle (MB)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..1.5, 0f64..hi)
        .map_err(err)?;
    let labels = ["OpenSIPS", "evid"];
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && (0.0..2.0).contains(&i) {
                labels[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_desc("MB (VmRSS)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series([
            Rectangle::new([(-0.3, 0.0), (0.3, o)], OPENSIPS.filled()),
            Rectangle::new([(0.7, 0.0), (1.3, r.value)], EVID.filled()),
        ])
        .map_err(err)?;
    chart
        .draw_series([
            Text::new(
                format!("{o:.0} MB (all processes)"),
                (-0.35, o * 1.03),
                ("sans-serif", 13).into_font(),
            ),
            Text::new(
                format!("{:.1} MB", r.value),
                (0.8, r.value + hi * 0.03),
                ("sans-serif", 13).into_font(),
            ),
        ])
        .map_err(err)?;
    Ok(())
}

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
fn scaling(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
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
fn latency(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
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
