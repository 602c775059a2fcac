//! `curves.png` and `confusion.png`, drawn with plotters into memory and saved as PNG, and
//! the same line charts as SVG for `imgclf report`.

use crate::sweep::{Sweep, SweepPoint};
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::HeadError;
use crate::metrics::Evaluation;
use crate::train::EpochStats;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// One panel of lines: a caption, axis names, ranges, named series of points drawn in turn
/// in blue, red, green, ..., and an optional vertical mark (the best epoch, say).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Drawn above the panel.
    pub caption: String,
    /// The x axis's name.
    pub x_desc: String,
    /// The y axis's name.
    pub y_desc: String,
    /// The x axis's range.
    pub x: Range<f64>,
    /// The y axis's range.
    pub y: Range<f64>,
    /// `(legend, points)`; empty series are left out.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// A dashed vertical line at this x, with its legend.
    pub mark: Option<(f64, String)>,
}

const COLOURS: [RGBColor; 4] = [BLUE, RED, RGBColor(0, 140, 60), RGBColor(150, 90, 0)];

/// Loss and accuracy per epoch, training and validation: the two panels of `curves.png`, with
/// `best` (1-based) marked when given.
pub fn curve_charts(history: &[EpochStats], best: Option<usize>) -> [LineChart; 2] {
    let epochs = history.len().max(2) as f64;
    let pick = |f: fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
        history.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect()
    };
    let chart = |name: &str, train: Vec<(f64, f64)>, val: Vec<(f64, f64)>| {
        let values = train.iter().chain(&val).map(|p| p.1);
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // no finite value yet (a run before its first epoch): empty axes over 0..1, where
        // an inverted range would send plotters' tick search into an endless loop
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        LineChart {
            caption: format!("{name} per epoch"),
            x_desc: "epoch".into(),
            y_desc: name.into(),
            x: 1.0..epochs,
            y: (lo - pad)..(hi + pad),
            series: vec![("training".into(), train), ("validation".into(), val)],
            mark: best.map(|b| (b as f64, format!("best epoch ({b})"))),
        }
    };
    [
        chart("loss", pick(|e| Some(e.loss)), pick(|e| e.val_loss)),
        chart("accuracy", pick(|e| Some(e.acc)), pick(|e| e.val_acc)),
    ]
}

/// The probe's sweep: validation log loss and accuracy against log10 C, the chosen C marked.
pub fn sweep_charts(sweep: &Sweep) -> [LineChart; 2] {
    let x = |c: f64| c.log10();
    let chart = |name: &str, points: Vec<(f64, f64)>| {
        let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let (lo, hi) = if lo <= hi && hi.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        LineChart {
            caption: format!("validation {name} against C"),
            x_desc: "log10 C".into(),
            y_desc: name.into(),
            x: -6.2..6.2,
            y: (lo - pad)..(hi + pad),
            series: vec![(format!("validation {name}"), points)],
            mark: Some((x(sweep.chosen), format!("chosen C = {:.3e}", sweep.chosen))),
        }
    };
    let pick = |f: fn(&SweepPoint) -> f64| sweep.points.iter().map(|p| (x(p.c), f(p))).collect();
    [chart("log loss", pick(|p| p.val_loss)), chart("accuracy", pick(|p| p.val_acc))]
}

/// Loss and accuracy per epoch, training and validation, side by side.
pub fn curves_png(history: &[EpochStats], path: &Path) -> Result<(), HeadError> {
    let charts = curve_charts(history, None);
    render(path, (1200, 480), |root| draw_charts(root, &charts))
}

/// Charts side by side as an SVG document of `size` pixels (text as text, sharp at any zoom).
pub fn charts_svg(charts: &[LineChart], size: (u32, u32)) -> Result<String, HeadError> {
    register_bundled_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| HeadError::Config(format!("drawing an SVG chart failed: {e}"));
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        draw_charts(&root, charts).map_err(|e| fail(&*e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

fn draw_charts<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, charts: &[LineChart]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let panels = root.split_evenly((1, charts.len().max(1)));
    for (panel, c) in panels.iter().zip(charts) {
        let c = &drawable(c);
        let mut chart = ChartBuilder::on(panel)
            .caption(&c.caption, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(c.x.clone(), c.y.clone())?;
        // epochs are whole: a tick per epoch up to 10, unlabelled between whole numbers
        let epochs = (c.x_desc == "epoch").then(|| (c.x.end - c.x.start).round() as usize + 1);
        chart
            .configure_mesh()
            .x_desc(&c.x_desc)
            .y_desc(&c.y_desc)
            .x_labels(epochs.map_or(10, |n| n.min(10)))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .x_label_formatter(&|x| match epochs {
                Some(_) if (x - x.round()).abs() > 1e-6 => String::new(),
                Some(_) => format!("{x:.0}"),
                None => format!("{x:.1}"),
            })
            .draw()?;
        for ((label, series), colour) in c.series.iter().zip(COLOURS.iter().cycle()) {
            if series.is_empty() {
                continue;
            }
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            if series.len() <= 100 {
                chart.draw_series(series.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
        }
        if let Some((x, label)) = &c.mark {
            let line = DashedLineSeries::new([(*x, c.y.start), (*x, c.y.end)], 6, 4, BLACK.stroke_width(1));
            chart
                .draw_series(line)?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// The largest magnitude a chart plots: past it (a diverged loss, a hand-edited file) a value
/// is left off, since plotters' axes cannot be drawn over such ranges.
const PLOTTABLE: f64 = 1e12;

/// `chart` as it can be drawn: points that are not finite or beyond [`PLOTTABLE`] left off (the
/// caption says how many), ranges made finite and increasing (an empty or inverted range
/// would send plotters' tick search into an endless loop).
fn drawable(chart: &LineChart) -> LineChart {
    let fits = |v: f64| v.is_finite() && v.abs() <= PLOTTABLE;
    let range = |r: &Range<f64>| match fits(r.start) && fits(r.end) && r.end > r.start {
        true => r.clone(),
        false => 0.0..1.0,
    };
    let mut c = LineChart { x: range(&chart.x), y: range(&chart.y), ..chart.clone() };
    let mut off = 0;
    for (_, points) in &mut c.series {
        let before = points.len();
        points.retain(|&(x, y)| fits(x) && fits(y));
        off += before - points.len();
    }
    if c.mark.as_ref().is_some_and(|(x, _)| !fits(*x)) {
        c.mark = None;
    }
    // the y range again from the points kept, when the one given could not be drawn
    if !(fits(chart.y.start) && fits(chart.y.end) && chart.y.end > chart.y.start) || off > 0 {
        let ys = c.series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
        let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo <= hi {
            let pad = ((hi - lo) * 0.08).max(hi.abs().max(lo.abs()) * 1e-6).max(1e-3);
            c.y = (lo - pad)..(hi + pad);
        }
    }
    if off > 0 {
        c.caption = format!("{} ({off} values not drawn: not finite or beyond {PLOTTABLE:e})", chart.caption);
    }
    c
}

/// The confusion matrix as a heat map (rows: true class, columns: predicted), shaded by the
/// share of each true class, with counts in the cells when they fit.
pub fn confusion_png(evaluation: &Evaluation, title: &str, path: &Path) -> Result<(), HeadError> {
    let k = evaluation.classes.len() as i32;
    let cell = if k <= 10 { 64 } else { (900 / k as u32).max(14) };
    let font = if k <= 10 { 16 } else { 11 };
    let longest = evaluation.classes.iter().map(|c| c.name.chars().count()).max().unwrap_or(1) as u32;
    let labels = (longest * font * 3 / 5).clamp(24, 240) + 36;
    let (margin, caption) = (16, 40);
    let side = cell * k as u32;
    let size = (side + labels + 2 * margin, side + labels + caption + 2 * margin);
    render(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(margin)
            .x_label_area_size(labels)
            .y_label_area_size(labels)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())?;
        // Row 0 (the first true class) is drawn at the top.
        let name = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::CenterOf(i) if (0..k).contains(i) => {
                evaluation.classes[if flip { k - 1 - i } else { *i } as usize].name.clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(k as usize)
            .y_labels(k as usize)
            .label_style(("sans-serif", font))
            .x_label_style(if k <= 10 {
                ("sans-serif", font).into_font()
            } else {
                // Many classes: vertical names so neighbours do not overlap.
                ("sans-serif", font).into_font().transform(FontTransform::Rotate90)
            })
            .axis_desc_style(("sans-serif", 18))
            .x_label_formatter(&|v| name(v, false))
            .y_label_formatter(&|v| name(v, true))
            .draw()?;
        for (t, row) in evaluation.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = k - 1 - t as i32;
            for (p, &count) in row.iter().enumerate() {
                let (x, share) = (p as i32, count as f64 / total);
                let shade = (255.0 * (1.0 - share)) as u8;
                let corners = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y + 1)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y)),
                ];
                chart.draw_series([Rectangle::new(corners, RGBColor(shade, shade, 255).filled())])?;
                if cell >= 24 {
                    let colour = if share > 0.5 { WHITE } else { BLACK };
                    let style = TextStyle::from(("sans-serif", font).into_font())
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let at = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
                    chart.draw_series([Text::new(count.to_string(), at, style)])?;
                }
            }
        }
        Ok(())
    })
}

/// The font every chart's text is measured (and in a PNG drawn) with.
fn register_bundled_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        assert!(register_font("sans-serif", FontStyle::Normal, imgclf_dataset::FONT).is_ok(), "bundled font parses")
    });
}

/// Draws into an RGB buffer and writes it as PNG.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<(), HeadError> {
    register_bundled_font();
    let mut buffer = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| HeadError::run(path, format!("drawing failed: {e}"));
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        draw(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    image::save_buffer(path, &buffer, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| HeadError::run(path, format!("cannot write PNG: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run saved before its first epoch (fine-tune writes its folder first) has no values
    /// to scale the axes by: it used to hang plotters' tick search.
    #[test]
    fn curves_of_an_empty_or_one_epoch_history_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("curves.png");
        curves_png(&[], &png).unwrap();
        assert!(image::open(&png).is_ok());
        let one = EpochStats { epoch: 1, loss: 0.5, acc: 0.8, val_loss: None, val_acc: None, seconds: 1.0 };
        curves_png(&[one], &png).unwrap();
        assert_eq!(image::open(&png).unwrap().width(), 1200);
    }
}
