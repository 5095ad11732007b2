//! The report's figures, drawn with `plotters` once per backend: PNG (bitmap,
//! text rasterised by `ab_glyph` from the embedded DejaVu Sans) and SVG (text
//! left to the viewer's sans-serif).

use std::error::Error;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::eval::phase::PhaseScore;

const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub type DrawResult = Result<(), Box<dyn Error>>;

/// A figure that can draw itself on any backend.
pub trait Figure {
    /// File stem, e.g. `timeline`.
    fn name(&self) -> String;
    fn size(&self) -> (u32, u32) {
        (1000, 560)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Write `figure` as `DIR/NAME.png` and `DIR/NAME.svg`; returns the SVG path.
pub fn save(figure: &impl Figure, dir: &Path) -> Result<PathBuf, String> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is compiled in and known good; a failure would show as missing text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS);
    });
    let name = figure.name();
    let png = dir.join(format!("{name}.png"));
    let svg = dir.join(format!("{name}.svg"));
    let fail = |path: &Path, e: Box<dyn Error>| format!("cannot draw {}: {e}", path.display());
    {
        let area = BitMapBackend::new(&png, figure.size()).into_drawing_area();
        area.fill(&WHITE).map_err(|e| fail(&png, e.into()))?;
        figure.draw(&area).map_err(|e| fail(&png, e))?;
        area.present().map_err(|e| fail(&png, e.into()))?;
    }
    {
        let area = SVGBackend::new(&svg, figure.size()).into_drawing_area();
        area.fill(&WHITE).map_err(|e| fail(&svg, e.into()))?;
        figure.draw(&area).map_err(|e| fail(&svg, e))?;
        area.present().map_err(|e| fail(&svg, e.into()))?;
    }
    Ok(svg)
}

/// Mean and standard deviation per sample of equally long windows, added one
/// at a time (Welford), so no window is kept.
pub struct MeanSd {
    mean: Vec<f64>,
    /// Sum of squared deviations from the running mean.
    m2: Vec<f64>,
    pub n: usize,
}

impl MeanSd {
    pub fn new(len: usize) -> Self {
        Self {
            mean: vec![0.0; len],
            m2: vec![0.0; len],
            n: 0,
        }
    }

    pub fn add(&mut self, window: &[f64]) {
        self.n += 1;
        let n = self.n as f64;
        for ((mean, m2), &x) in self.mean.iter_mut().zip(&mut self.m2).zip(window) {
            let delta = x - *mean;
            *mean += delta / n;
            *m2 += delta * (x - *mean);
        }
    }

    pub fn mean(&self, i: usize) -> f64 {
        self.mean[i]
    }

    /// Sample standard deviation (0 for a single window).
    pub fn sd(&self, i: usize) -> f64 {
        if self.n > 1 {
            (self.m2[i] / (self.n - 1) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// An event-triggered average: the raw signal and, below it, a band-passed copy.
pub struct EventAverage {
    pub name: String,
    pub title: String,
    /// Time of each sample relative to the event, in the axis' unit.
    pub times: Vec<f64>,
    pub time_label: String,
    pub unit: String,
    pub raw: MeanSd,
    pub band: Option<(String, MeanSd)>,
}

/// At most this many points per drawn line (the averages are computed at full rate).
const MAX_POINTS: usize = 1500;

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    times: &[f64],
    stats: &MeanSd,
    x_label: &str,
    y_label: &str,
    colour: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let step = times.len().div_ceil(MAX_POINTS).max(1);
    let points: Vec<(f64, f64, f64)> = (0..times.len())
        .step_by(step)
        .map(|i| (times[i], stats.mean(i), stats.sd(i)))
        .collect();
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1 - p.2), hi.max(p.1 + p.2))
        });
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let (x0, x1) = (times[0], times[times.len() - 1]);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut outline: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1 + p.2)).collect();
    outline.extend(points.iter().rev().map(|p| (p.0, p.1 - p.2)));
    chart
        .draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.25))))?
        .label("± SD")
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 20, y + 5)], colour.mix(0.25).filled())
        });
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            colour.stroke_width(2),
        ))?
        .label(format!("mean (n = {})", stats.n))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, lo - pad), (0.0, hi + pad)],
        BLACK.mix(0.6),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

impl Figure for EventAverage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> (u32, u32) {
        if self.band.is_some() {
            (1000, 760)
        } else {
            (1000, 420)
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let area = area.titled(&self.title, (FONT, 20))?;
        let y_label = format!("amplitude ({})", self.unit);
        match &self.band {
            Some((band_label, band)) => {
                let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
                panel(
                    &top,
                    "raw signal",
                    &self.times,
                    &self.raw,
                    &self.time_label,
                    &y_label,
                    BLUE,
                )?;
                panel(
                    &bottom,
                    band_label,
                    &self.times,
                    band,
                    &self.time_label,
                    &y_label,
                    RED,
                )?;
            }
            None => panel(
                &area,
                "raw signal",
                &self.times,
                &self.raw,
                &self.time_label,
                &y_label,
                BLUE,
            )?,
        }
        Ok(())
    }
}

/// A histogram with labelled vertical markers (medians, percentiles, limits).
pub struct Histogram {
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub values: Vec<f64>,
    pub bins: usize,
    pub markers: Vec<(String, f64)>,
}

impl Figure for Histogram {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (mut lo, mut hi) = self
            .values
            .iter()
            .chain(self.markers.iter().map(|m| &m.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let width = (hi - lo) / self.bins as f64;
        let mut counts = vec![0u32; self.bins];
        for &v in &self.values {
            counts[(((v - lo) / width) as usize).min(self.bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo - width..hi + width, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc("count")
            // Counts are whole: no tick between them.
            .y_label_formatter(&|y| {
                if y.fract() == 0.0 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x = lo + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, c as f64)], BLUE.mix(0.6).filled())
            }))?
            .label(format!("n = {}", self.values.len()))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.6).filled()));
        // A marker without a label continues the one before it (both ends of ±50 ms).
        let colours = [RED, BLACK, MAGENTA, GREEN];
        let mut colour_index = 0;
        for (i, (label, value)) in self.markers.iter().enumerate() {
            if i > 0 && !label.is_empty() {
                colour_index += 1;
            }
            let colour = colours[colour_index % colours.len()];
            let series = chart.draw_series(std::iter::once(PathElement::new(
                vec![(*value, 0.0), (*value, top)],
                colour.stroke_width(2),
            )))?;
            if !label.is_empty() {
                series.label(label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    }
}

/// A rose (circular histogram) of stim phases with the mean vector.
pub struct PhaseRose {
    pub title: String,
    pub phases: Vec<f64>,
    pub score: PhaseScore,
}

impl Figure for PhaseRose {
    fn name(&self) -> String {
        "phase_rose".into()
    }

    fn size(&self) -> (u32, u32) {
        (760, 760)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        const BINS: usize = 18;
        let mut counts = [0usize; BINS];
        for &p in &self.phases {
            let turn = (p.rem_euclid(2.0 * PI)) / (2.0 * PI);
            counts[((turn * BINS as f64) as usize).min(BINS - 1)] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT, 20))
            .margin(20)
            .build_cartesian_2d(-1.45..1.45, -1.45..1.45)?;
        // 0° (the up-state peak) points up, phase grows clockwise.
        let at = |angle: f64, r: f64| (r * angle.sin(), r * angle.cos());
        for ring in [0.25, 0.5, 0.75, 1.0] {
            chart.draw_series(std::iter::once(PathElement::new(
                (0..=120)
                    .map(|k| at(k as f64 * 2.0 * PI / 120.0, ring))
                    .collect::<Vec<_>>(),
                BLACK.mix(0.25),
            )))?;
        }
        chart.draw_series(std::iter::once(Polygon::new(
            (0..=60)
                .map(|k| at(-PI / 2.0 + k as f64 * PI / 60.0, 1.0))
                .chain(std::iter::once((0.0, 0.0)))
                .collect::<Vec<_>>(),
            GREEN.mix(0.08),
        )))?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let (a0, a1) = (i as f64, i as f64 + 1.0);
            let r = c as f64 / most;
            let mut wedge = vec![(0.0, 0.0)];
            wedge.extend((0..=8).map(|k| {
                at(
                    (a0 + (a1 - a0) * k as f64 / 8.0) * 2.0 * PI / BINS as f64,
                    r,
                )
            }));
            Polygon::new(wedge, BLUE.mix(0.55))
        }))?;
        let mean = self.score.mean_error_deg.to_radians() + self.score.target_deg.to_radians();
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), at(mean, self.score.r)],
            RED.stroke_width(4),
        )))?;
        let style = (FONT, 15).into_font();
        for (angle, text) in [
            (0.0, "0° up-state peak"),
            (PI / 2.0, "90°"),
            (PI, "±180° trough"),
            (-PI / 2.0, "−90°"),
        ] {
            let (x, y) = at(angle, 1.16);
            chart.draw_series(std::iter::once(Text::new(
                text.to_string(),
                (x - 0.03 * text.chars().count() as f64 / 2.0, y + 0.04),
                style.clone(),
            )))?;
        }
        let lines = [
            format!(
                "n = {} stims; bars: count per 20° (outer ring = {most:.0})",
                self.score.stims
            ),
            format!(
                "circular mean {:.1}°, R = {:.3} (red arrow), circular SD {:.1}°",
                self.score.mean_error_deg + self.score.target_deg,
                self.score.r,
                self.score.circular_sd_deg
            ),
            format!(
                "{:.1} % within ±90° of {}° (green half: the up-phase)",
                100.0 * self.score.share_in_half_cycle,
                self.score.target_deg
            ),
        ];
        for (i, line) in lines.iter().enumerate() {
            chart.draw_series(std::iter::once(Text::new(
                line.clone(),
                (-1.42, -1.22 - 0.08 * i as f64),
                (FONT, 14).into_font(),
            )))?;
        }
        Ok(())
    }
}

/// One row of the timeline: intervals (a point event has zero length).
pub struct Lane {
    pub label: String,
    pub spans: Vec<(f64, f64)>,
    pub colour: RGBColor,
}

/// A signal's min and max per bin across the session.
pub struct Overview {
    /// (bin start s, min, max).
    pub bins: Vec<(f64, f64, f64)>,
    pub label: String,
    pub unit: String,
}

/// The whole session: the signal's overview on top, one lane per event kind below.
pub struct Timeline {
    pub title: String,
    pub duration_s: f64,
    pub overview: Option<Overview>,
    pub lanes: Vec<Lane>,
    pub footnote: String,
}

impl Figure for Timeline {
    fn name(&self) -> String {
        "timeline".into()
    }

    fn size(&self) -> (u32, u32) {
        (1200, 300 + 40 * self.lanes.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let area = area.titled(&self.title, (FONT, 20))?;
        let (area, foot) = area.split_vertically(area.dim_in_pixel().1 - 26);
        foot.draw(&Text::new(
            self.footnote.clone(),
            (80, 4),
            (FONT, 13).into_font(),
        ))?;
        let minutes = (self.duration_s / 60.0).max(1e-6);
        let (top, bottom) = area.split_vertically(230);
        if let Some(Overview { bins, label, unit }) = &self.overview {
            let (lo, hi) = bins
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), b| {
                    (lo.min(b.1), hi.max(b.2))
                });
            let (lo, hi) = if lo < hi {
                (lo, hi)
            } else {
                (lo - 1.0, lo + 1.0)
            };
            let mut chart = ChartBuilder::on(&top)
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(150)
                .build_cartesian_2d(0.0..minutes, lo..hi)?;
            chart
                .configure_mesh()
                .y_desc(format!("{label} ({unit}), min–max"))
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 13))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            chart.draw_series(bins.iter().map(|&(t, lo, hi)| {
                PathElement::new(vec![(t / 60.0, lo), (t / 60.0, hi)], BLUE.mix(0.7))
            }))?;
        }
        let lanes = self.lanes.len().max(1);
        let mut chart = ChartBuilder::on(&bottom)
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(150)
            .build_cartesian_2d(0.0..minutes, 0.0..lanes as f64)?;
        let labels: Vec<String> = self.lanes.iter().map(|l| l.label.clone()).collect();
        chart
            .configure_mesh()
            .x_desc("time (min)")
            .y_labels(lanes * 2 + 1)
            .y_label_formatter(&|y| {
                let k = (y - 0.5).round();
                if (y - 0.5 - k).abs() < 1e-6 && k >= 0.0 {
                    labels
                        .get(lanes - 1 - k as usize)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        // A point or short interval is drawn at least one pixel wide.
        let min_width = minutes / 1100.0;
        for (i, lane) in self.lanes.iter().enumerate() {
            let y = (lanes - 1 - i) as f64;
            chart.draw_series(lane.spans.iter().map(|&(a, b)| {
                let (a, b) = (a / 60.0, b / 60.0);
                Rectangle::new(
                    [(a, y + 0.15), (b.max(a + min_width), y + 0.85)],
                    lane.colour.mix(0.8).filled(),
                )
            }))?;
        }
        Ok(())
    }
}
