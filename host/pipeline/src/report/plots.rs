//! The report's charts, drawn by plotters into SVG strings: line charts over iterations or DPO
//! steps (a missing value is a gap, a lone value a point) and stacked bars of phase timings.
//! Each chart draws its own title and legend above the plot area, so nothing overlaps the data.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::series::DashedLineSeries;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of every chart, in SVG pixels.
pub(super) const WIDTH: u32 = 620;
/// Height of every chart, in SVG pixels.
pub(super) const HEIGHT: u32 = 340;
const FONT: &str = "sans-serif";
/// Plotters writes `font-size = size / 1.24`; these are 12, 13 and 15 px in the SVG.
const LABEL_SIZE: f64 = 15.0;
const DESC_SIZE: f64 = 16.0;
const TITLE_SIZE: f64 = 19.0;
/// Height of a legend row, and the width of a legend character (12 px sans-serif, generous).
const LEGEND_ROW: i32 = 22;
const LEGEND_CHAR: i32 = 7;

/// The Tableau 10 colours: distinguishable, and printable in grey.
pub(super) const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// Tableau orange.
pub(super) const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Tableau green.
pub(super) const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// Tableau red.
pub(super) const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Tableau purple.
pub(super) const PURPLE: RGBColor = RGBColor(0x94, 0x67, 0xbd);
/// Tableau brown.
pub(super) const BROWN: RGBColor = RGBColor(0x8c, 0x56, 0x4b);
/// Tableau grey.
pub(super) const GREY: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);
/// A colour per iteration (or per phase), cycling.
pub(super) const PALETTE: [RGBColor; 7] = [BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, GREY];

/// One line of a chart: `(x, y)` points, `None` where the value is missing (a gap).
pub(super) struct Series {
    /// The legend's text.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
    /// Dashed rather than solid.
    pub dashed: bool,
    /// The points in x order.
    pub points: Vec<(f64, Option<f64>)>,
}

/// What the x axis counts.
pub(super) enum XAxis {
    /// Iterations `1..=n`: a tick at each (or every few when there are many).
    Iterations(u32),
    /// DPO steps counted over the whole run, `0..=max`.
    Steps(f64),
}

/// A line chart.
pub(super) struct LineChart<'a> {
    /// The title above it.
    pub title: &'a str,
    /// The x axis.
    pub x: XAxis,
    /// The y axis' description (with its unit).
    pub y_desc: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// A y range the axis always covers (e.g. 0–100 for percentages).
    pub y_span: Option<(f64, f64)>,
    /// A horizontal reference line and its legend text (e.g. 50 % for a win rate).
    pub reference: Option<(f64, &'a str)>,
}

/// One layer of a stacked bar chart.
pub(super) struct Layer {
    /// The legend's text.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
    /// Its height per bar, in the chart's unit.
    pub values: Vec<f64>,
}

/// Stacked bars, one per iteration.
pub(super) struct StackedBars<'a> {
    /// The title above it.
    pub title: &'a str,
    /// The y axis' description (with its unit).
    pub y_desc: &'a str,
    /// The iteration of each bar.
    pub iterations: Vec<u32>,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

/// A legend entry: a line, a dashed line or a filled square.
enum Swatch {
    Line(RGBColor, bool),
    Square(RGBColor),
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Failure = String;

fn failed<E: std::fmt::Debug>(error: E) -> Failure {
    format!("{error:?}")
}

/// The title row and the legend row of a chart; returns the area left for the plot.
fn frame<'a>(
    root: &Area<'a>,
    title: &str,
    legend: &[(String, Swatch)],
) -> Result<Area<'a>, Failure> {
    root.fill(&WHITE).map_err(failed)?;
    let (head, rest) = root.split_vertically(30);
    let title_style = (FONT, TITLE_SIZE)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    head.draw_text(title, &title_style, (12, 16))
        .map_err(failed)?;
    // Entries flow left to right and wrap onto another row where the width ends.
    let width = |name: &str| 28 + LEGEND_CHAR * name.chars().count() as i32 + 20;
    let mut places = Vec::with_capacity(legend.len());
    let (mut x, mut row) = (14, 0);
    for (name, _) in legend {
        if x > 14 && x + width(name) > WIDTH as i32 - 8 {
            x = 14;
            row += 1;
        }
        places.push((x, 11 + LEGEND_ROW * row));
        x += width(name);
    }
    let (legend_rows, plot) = rest.split_vertically(LEGEND_ROW * (row + 1));
    let text_style = (FONT, LABEL_SIZE)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for ((name, swatch), &(x, y)) in legend.iter().zip(&places) {
        match swatch {
            Swatch::Line(color, dashed) => {
                let style = color.stroke_width(2);
                if *dashed {
                    for start in [x, x + 8, x + 16] {
                        legend_rows
                            .draw(&PathElement::new(vec![(start, y), (start + 5, y)], style))
                            .map_err(failed)?;
                    }
                } else {
                    legend_rows
                        .draw(&PathElement::new(vec![(x, y), (x + 22, y)], style))
                        .map_err(failed)?;
                    legend_rows
                        .draw(&Circle::new((x + 11, y), 3, color.filled()))
                        .map_err(failed)?;
                }
            }
            Swatch::Square(color) => {
                legend_rows
                    .draw(&Rectangle::new(
                        [(x + 4, y - 6), (x + 16, y + 6)],
                        color.filled(),
                    ))
                    .map_err(failed)?;
            }
        }
        legend_rows
            .draw_text(name, &text_style, (x + 28, y))
            .map_err(failed)?;
    }
    Ok(plot)
}

/// Tick text for a y value, with as many decimals as the axis' span needs.
fn tick(value: f64, span: f64) -> String {
    let decimals = if span >= 20.0 {
        0
    } else if span >= 2.0 {
        1
    } else if span >= 0.2 {
        2
    } else {
        3
    };
    format!("{value:.decimals$}")
}

/// The y range covering `values` (and `span`), padded so points do not sit on the frame.
fn y_range(values: impl Iterator<Item = f64>, span: Option<(f64, f64)>) -> (f64, f64) {
    let (mut low, mut high) = span.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    for value in values.filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if span.is_some_and(|(from, to)| from < to && low >= from && high <= to) {
        return (low, high);
    }
    let pad = if high > low {
        (high - low) * 0.08
    } else {
        low.abs().max(1.0) * 0.1
    };
    // An axis asked to start at 0 (counts, lengths, percentages) does not pad below it.
    let bottom = if span.is_some_and(|(from, _)| from == 0.0) && low >= 0.0 {
        0.0
    } else {
        low - pad
    };
    (bottom, high + pad)
}

/// The runs of consecutive present values of a series: each is drawn as one line.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        match y.filter(|y| y.is_finite()) {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// An x axis over iterations `1..=n`, from 0.5 to n + 0.5 so that the first and last points
/// (or bars) are not on the frame, with ticks at whole iterations only.
struct IterationAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl IterationAxis {
    /// Ticks at iterations: each one up to 12, then every few.
    fn new(count: u32) -> Self {
        let count = count.max(1);
        let every = count.div_ceil(12).max(1);
        IterationAxis {
            inner: (0.5..f64::from(count) + 0.5).into(),
            ticks: (1..=count)
                .filter(|i| (i - 1) % every == 0)
                .map(f64::from)
                .collect(),
        }
    }
}

impl Ranged for IterationAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Draws `chart` and returns its SVG.
pub(super) fn line_chart(chart: &LineChart<'_>) -> Result<String, Failure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let mut legend: Vec<(String, Swatch)> = chart
            .series
            .iter()
            .map(|s| (s.name.clone(), Swatch::Line(s.color, s.dashed)))
            .collect();
        if let Some((_, name)) = chart.reference {
            legend.push((name.to_string(), Swatch::Line(GREY, true)));
        }
        let plot = frame(&root, chart.title, &legend)?;
        let values = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .chain(chart.reference.map(|r| r.0));
        let (low, high) = y_range(values, chart.y_span);
        let empty = chart
            .series
            .iter()
            .all(|s| s.points.iter().all(|p| p.1.is_none()));
        match chart.x {
            XAxis::Iterations(count) => {
                let x = IterationAxis::new(count);
                let mut builder = ChartBuilder::on(&plot);
                builder
                    .margin_right(18)
                    .margin_top(6)
                    .x_label_area_size(46)
                    .y_label_area_size(70);
                let mut cartesian = builder.build_cartesian_2d(x, low..high).map_err(failed)?;
                cartesian
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_desc("iteration")
                    .y_desc(chart.y_desc)
                    .label_style((FONT, LABEL_SIZE))
                    .axis_desc_style((FONT, DESC_SIZE))
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| tick(*y, high - low))
                    .light_line_style(WHITE)
                    .max_light_lines(0)
                    .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
                    .draw()
                    .map_err(failed)?;
                draw_lines(&mut cartesian, chart, 4)?;
            }
            XAxis::Steps(max) => {
                let mut builder = ChartBuilder::on(&plot);
                builder
                    .margin_right(18)
                    .margin_top(6)
                    .x_label_area_size(46)
                    .y_label_area_size(70);
                let mut cartesian = builder
                    .build_cartesian_2d(0.0..max.max(1.0) * 1.03, low..high)
                    .map_err(failed)?;
                cartesian
                    .configure_mesh()
                    .x_desc("DPO step (counted over the run)")
                    .y_desc(chart.y_desc)
                    .label_style((FONT, LABEL_SIZE))
                    .axis_desc_style((FONT, DESC_SIZE))
                    .x_labels(8)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| tick(*y, high - low))
                    .light_line_style(WHITE)
                    .max_light_lines(0)
                    .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
                    .draw()
                    .map_err(failed)?;
                let many = chart.series.iter().map(|s| s.points.len()).sum::<usize>() > 60;
                draw_lines(&mut cartesian, chart, if many { 0 } else { 3 })?;
            }
        }
        if empty {
            let style = (FONT, DESC_SIZE)
                .into_font()
                .color(&GREY)
                .pos(Pos::new(HPos::Center, VPos::Center));
            let (width, height) = plot.dim_in_pixel();
            plot.draw_text(
                "no data yet",
                &style,
                (width as i32 / 2 + 30, height as i32 / 2 - 20),
            )
            .map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

fn draw_lines<'a, X>(
    cartesian: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    chart: &LineChart<'_>,
    radius: i32,
) -> Result<(), Failure>
where
    X: Ranged<ValueType = f64>,
{
    if let Some((y, _)) = chart.reference {
        let (x0, x1) = {
            let range = cartesian.x_range();
            (range.start, range.end)
        };
        cartesian
            .draw_series(DashedLineSeries::new(
                vec![(x0, y), (x1, y)],
                6,
                5,
                GREY.stroke_width(1),
            ))
            .map_err(failed)?;
    }
    for series in &chart.series {
        let style = series.color.stroke_width(2);
        for segment in segments(&series.points) {
            if segment.len() > 1 {
                if series.dashed {
                    cartesian
                        .draw_series(DashedLineSeries::new(segment.clone(), 7, 4, style))
                        .map_err(failed)?;
                } else {
                    cartesian
                        .draw_series(LineSeries::new(segment.clone(), style))
                        .map_err(failed)?;
                }
            }
            // A lone value (one iteration, or one between gaps) is always drawn as a point.
            let radius = if segment.len() == 1 {
                radius.max(3)
            } else {
                radius
            };
            if radius > 0 {
                cartesian
                    .draw_series(
                        segment
                            .iter()
                            .map(|&point| Circle::new(point, radius, series.color.filled())),
                    )
                    .map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// Draws `bars` and returns its SVG.
pub(super) fn stacked_bars(bars: &StackedBars<'_>) -> Result<String, Failure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let legend: Vec<(String, Swatch)> = bars
            .layers
            .iter()
            .map(|layer| (layer.name.clone(), Swatch::Square(layer.color)))
            .collect();
        let plot = frame(&root, bars.title, &legend)?;
        let totals: Vec<f64> = (0..bars.iterations.len())
            .map(|bar| {
                bars.layers
                    .iter()
                    .map(|layer| layer.values.get(bar).copied().unwrap_or(0.0))
                    .sum()
            })
            .collect();
        let top = totals.iter().copied().fold(0.0, f64::max);
        let top = if top > 0.0 { top * 1.08 } else { 1.0 };
        let count = bars.iterations.iter().copied().max().unwrap_or(1).max(1);
        let x = IterationAxis::new(count);
        let mut builder = ChartBuilder::on(&plot);
        builder
            .margin_right(18)
            .margin_top(6)
            .x_label_area_size(46)
            .y_label_area_size(70);
        let mut cartesian = builder.build_cartesian_2d(x, 0.0..top).map_err(failed)?;
        cartesian
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("iteration")
            .y_desc(bars.y_desc)
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, DESC_SIZE))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| tick(*y, top))
            .light_line_style(WHITE)
            .max_light_lines(0)
            .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
            .draw()
            .map_err(failed)?;
        for (bar, &iteration) in bars.iterations.iter().enumerate() {
            let center = f64::from(iteration);
            let mut bottom = 0.0;
            for layer in &bars.layers {
                let height = layer.values.get(bar).copied().unwrap_or(0.0);
                if height <= 0.0 {
                    continue;
                }
                cartesian
                    .draw_series(std::iter::once(Rectangle::new(
                        [(center - 0.3, bottom), (center + 0.3, bottom + height)],
                        layer.color.filled(),
                    )))
                    .map_err(failed)?;
                bottom += height;
            }
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_a_series_and_lone_values_stay() {
        let points = [
            (1.0, Some(0.5)),
            (2.0, None),
            (3.0, Some(0.7)),
            (4.0, Some(f64::NAN)),
            (5.0, Some(0.1)),
            (6.0, Some(0.2)),
        ];
        assert_eq!(
            segments(&points),
            vec![
                vec![(1.0, 0.5)],
                vec![(3.0, 0.7)],
                vec![(5.0, 0.1), (6.0, 0.2)]
            ]
        );
    }

    #[test]
    fn y_ranges_pad_single_values_and_keep_fixed_spans() {
        let (low, high) = y_range([0.6].into_iter(), None);
        assert!(low < 0.6 && high > 0.6);
        assert_eq!(
            y_range([20.0, 80.0].into_iter(), Some((0.0, 100.0))),
            (0.0, 100.0)
        );
        assert_eq!(y_range(std::iter::empty(), None), (0.0, 1.0));
        let (low, high) = y_range([0.0, 0.0].into_iter(), Some((0.0, 0.0)));
        assert!(low == 0.0 && high > 0.0, "{low} {high}");
    }

    #[test]
    fn one_iteration_draws_a_point() {
        let svg = line_chart(&LineChart {
            title: "scores",
            x: XAxis::Iterations(1),
            y_desc: "score",
            series: vec![Series {
                name: "chosen".into(),
                color: GREEN,
                dashed: false,
                points: vec![(1.0, Some(0.6))],
            }],
            y_span: None,
            reference: None,
        })
        .expect("drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<circle"), "{svg}");
        assert!(
            svg.contains(">\nchosen\n<") || svg.contains("chosen"),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = line_chart(&LineChart {
            title: "DPO",
            x: XAxis::Steps(0.0),
            y_desc: "loss",
            series: vec![],
            y_span: None,
            reference: None,
        })
        .expect("drawn");
        assert!(svg.contains("no data yet"), "{svg}");
    }
}
