//! `curves.png` and `confusion.png`, drawn with plotters into memory and saved as PNG.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::HeadError;
use crate::metrics::Evaluation;
use crate::train::EpochStats;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Loss and accuracy per epoch, training and validation, side by side.
pub fn curves_png(history: &[EpochStats], path: &Path) -> Result<(), HeadError> {
    let (w, h) = (1200, 480);
    render(path, (w, h), |root| {
        let panels = root.split_evenly((1, 2));
        let epochs = history.len().max(2) as f64;
        let pick = |f: fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
            history.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect()
        };
        let charts = [
            ("loss", pick(|e| Some(e.loss)), pick(|e| e.val_loss)),
            ("accuracy", pick(|e| Some(e.acc)), pick(|e| e.val_acc)),
        ];
        for (panel, (name, train, val)) in panels.iter().zip(charts) {
            let values = train.iter().chain(&val).map(|p| p.1);
            let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            // no finite value yet (a run before its first epoch): empty axes over 0..1, where
            // an inverted range would send plotters' tick search into an endless loop
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{name} per epoch"), ("sans-serif", 24))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(name)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            for (series, label, colour) in [(train, "training", BLUE), (val, "validation", RED)] {
                if series.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
                chart.draw_series(series.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
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

/// Draws into an RGB buffer and writes it as PNG.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> DrawResult,
) -> Result<(), HeadError> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        assert!(register_font("sans-serif", FontStyle::Normal, imgclf_dataset::FONT).is_ok(), "bundled font parses")
    });
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
