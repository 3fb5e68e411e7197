//! `results.svg`: evid against OpenSIPS per scenario and events/s per transport (log scale);
//! how throughput and raise latency scale with the number of subscribers, and raise latency
//! beside a dead destination (`latency.rs`); resident memory, its course beside dead
//! destinations, and the start-up time (`memory.rs`).

mod latency;
mod memory;

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

/// The three percentile colours and names, for the latency panels.
const PERCENTILES: [(&str, RGBColor); 3] = [("p50", P50), ("p99", P99), ("p99.9", P999)];

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("chart: {e}")
}

/// Short x-axis labels for the throughput panel.
fn short(id: &str) -> &str {
    match id {
        "1" => "1 flatstore",
        "2" => "2 UDP",
        "2/raw" => "raw sendto",
        "2/raw-mmsg" => "raw sendmmsg",
        "2/raw-conn" => "raw sendmmsg conn.",
        "3" => "3 flat+UDP",
        "4" => "4 +dead RMQ",
        "4b" => "4b same, newest",
        "5" => "5 +dead XMLRPC",
        "6" => "6 +dead TCP",
        "7/1" => "7 MI 1 conn",
        "7/4" => "7 MI 4 conn",
        "7/raw" => "no-work HTTP",
        "10" => "10 unix",
        "11" => "11 route",
        "11/async" => "route async",
        "12" => "12 TCP stream",
        "13" => "13 RabbitMQ",
        "14" => "14 virtual ×3",
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
    let root = SVGBackend::new(path, (1600, 1560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(title, ("sans-serif", 26).into_font())
        .map_err(err)?;
    let (top, rest) = root.split_vertically(560);
    throughput(&top, rows)?;
    let (middle, bottom) = rest.split_vertically(490);
    let mid = middle.split_evenly((1, 3));
    latency::scaling(&mid[0], rows)?;
    latency::latency(&mid[1], rows)?;
    latency::dead_latency(&mid[2], rows)?;
    let low = bottom.split_evenly((1, 3));
    memory::memory(&low[0], rows)?;
    memory::rss_course(&low[1], rows)?;
    memory::startup(&low[2], rows)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Rows of the throughput panel: the script loops per transport and MI (not the in-process
/// latency rows, memory or time).
fn is_throughput(r: &Row) -> bool {
    matches!(r.unit, "events/s" | "req/s") && r.p50_ns.is_none()
}

/// Bars: evid and OpenSIPS per throughput scenario, log scale.
fn throughput(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let bars: Vec<&Row> = rows.iter().filter(|r| is_throughput(r)).collect();
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
            "Throughput per scenario and transport: evid vs OpenSIPS 3.6.8 where the issue has a figure (events/s; MI: requests/s; log scale)",
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
        .label_style(("sans-serif", 13))
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
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
        .map_err(err)?
        .label("evid, no OpenSIPS figure in the issue")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], GREY.filled()));
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
