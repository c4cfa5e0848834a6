//! Charts as inline SVG: stacked bars of pull outcomes over time. Each segment's tooltip is an
//! SVG `<title>`, which browsers show without any script.

use maud::{html, Markup};

use super::layout::{count, Outcome};

/// One bar: its axis label, its tooltip heading, and the pulls of each outcome in
/// [`Outcome::ALL`] order.
pub struct Bar {
    pub label: String,
    pub heading: String,
    pub parts: [i64; 5],
}

const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// The bars side by side, each stacked by outcome, with a legend.
pub fn stacked(bars: &[Bar], label_every: usize) -> Markup {
    let step = 28.0;
    let width = LEFT + step * bars.len() as f64 + 8.0;
    let max = bars
        .iter()
        .map(|b| b.parts.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - BOTTOM - TOP;
    let y = |v: i64| TOP + plot - plot * v as f64 / max as f64;
    html! {
        svg.chart role="img" aria-label="pulls by outcome" viewBox=(format!("0 0 {width} {HEIGHT}"))
            width=(width) height=(HEIGHT) xmlns="http://www.w3.org/2000/svg" {
            @for tick in [0, max / 2, max] {
                line x1=(LEFT - 4.0) x2=(width - 4.0) y1=(y(tick)) y2=(y(tick)) stroke="#d8dde3" {}
                text x=(LEFT - 8.0) y=(y(tick) + 4.0) text-anchor="end" font-size="11" fill="#5b6570" { (count(tick)) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let x = LEFT + step * i as f64 + 3.0;
                g.bar {
                    @for (outcome, n, below) in segments(bar) {
                        @let top = y(below + n);
                        @let bottom = y(below);
                        rect x=(x) y=(top) width=(step - 6.0) height=((bottom - top).max(1.0))
                            fill=(outcome.colour()) data-outcome=(outcome.class()) data-pulls=(n) {
                            title { (bar.heading) ": " (outcome.label()) " " (count(n)) }
                        }
                    }
                    @if i % label_every.max(1) == 0 {
                        text x=(x + (step - 6.0) / 2.0) y=(HEIGHT - 6.0) text-anchor="middle" font-size="10" fill="#5b6570" { (bar.label) }
                    }
                }
            }
        }
        div.legend {
            @for o in Outcome::ALL {
                span { i style={"background:" (o.colour())} {} (o.label()) }
            }
        }
    }
}

/// A bar's non-empty segments, bottom up: (outcome, pulls, pulls below it).
fn segments(bar: &Bar) -> Vec<(Outcome, i64, i64)> {
    let mut below = 0;
    let mut out = Vec::new();
    for (outcome, n) in Outcome::ALL.iter().zip(bar.parts) {
        if n > 0 {
            out.push((*outcome, n, below));
            below += n;
        }
    }
    out
}
