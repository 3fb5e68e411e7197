//! The memory and start-up panels: resident memory idle (8, beside OpenSIPS's), under load (16)
//! and beside dead destinations (17); the course of 17 over time; the start-up time (18).

use super::{err, Area, EVID, GREY, OPENSIPS, P50, P999};
use crate::Row;
use plotters::prelude::*;

/// Bars: resident memory, OpenSIPS idle and evid idle / under load / beside dead destinations
/// (MB, linear).
pub(super) fn memory(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let find = |id: &str| rows.iter().find(|r| r.id == id && r.unit == "MB");
    let mut bars: Vec<(&str, f64, RGBColor)> = Vec::new();
    if let Some(o) = find("8").and_then(|r| r.opensips) {
        bars.push(("OpenSIPS idle", o, OPENSIPS));
    }
    for (id, label) in [
        ("8", "evid idle"),
        ("16", "under load (max)"),
        ("17", "dead dest. (max)"),
    ] {
        if let Some(r) = find(id) {
            bars.push((label, r.value, if id == "8" { EVID } else { GREY }));
        }
    }
    if bars.is_empty() {
        return Ok(());
    }
    let n = bars.len();
    let hi = (bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.2).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Resident memory (MB, VmRSS)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                bars[i as usize].0.to_string()
            } else {
                String::new()
            }
        })
        .y_desc("MB (VmRSS)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, c))| {
            Rectangle::new([(i as f64 - 0.3, 0.0), (i as f64 + 0.3, *v)], c.filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                format!("{v:.1} MB"),
                (i as f64 - 0.25, v + hi * 0.03),
                ("sans-serif", 13).into_font(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// Line: VmRSS over time beside dead destinations (scenario 17), with its stated bound.
pub(super) fn rss_course(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let Some(r) = rows.iter().find(|r| r.id == "17" && !r.series.is_empty()) else {
        return Ok(());
    };
    let pts = &r.series;
    let start = pts.first().map_or(0.0, |p| p.1);
    let bound = start + crate::scenarios::DEAD_BOUND_MB;
    let t_max = pts.last().map_or(1.0, |p| p.0).max(1.0);
    let hi = pts.iter().map(|p| p.1).fold(bound, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "VmRSS beside dead RabbitMQ + XML-RPC + TCP",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds under load")
        .y_desc("MB")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(pts.clone(), EVID.stroke_width(2)))
        .map_err(err)?
        .label("evid VmRSS")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], EVID.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|p| Circle::new(*p, 3, EVID.filled())))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, bound), (t_max, bound)],
            P999.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!(
            "bound: start + {} MB",
            crate::scenarios::DEAD_BOUND_MB
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], P999.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Bar: start-up time with every module loaded, to MI answering (median).
pub(super) fn startup(area: &Area<'_>, rows: &[Row]) -> Result<(), String> {
    let Some(r) = rows.iter().find(|r| r.id == "18") else {
        return Ok(());
    };
    let hi = (r.value * 1.4).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Start-up, all modules (ms)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..0.5, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(1)
        .x_label_formatter(&|_| "spawn → MI answers (median)".to_string())
        .y_desc("ms")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series([Rectangle::new(
            [(-0.12, 0.0), (0.12, r.value)],
            P50.filled(),
        )])
        .map_err(err)?;
    chart
        .draw_series([Text::new(
            format!("{:.1} ms", r.value),
            (-0.06, r.value + hi * 0.03),
            ("sans-serif", 14).into_font(),
        )])
        .map_err(err)?;
    Ok(())
}
