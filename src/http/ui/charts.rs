//! The geometry of the overview's small inline SVG charts: scales, bar positions and
//! sizes, and which labels show. Pure: the templates only place what this computes, so
//! the pages need no script and nothing from elsewhere.

/// A bar, in the chart's own coordinates (SVG user units; y grows downwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    pub value: i64,
    /// The CSS class that colours it (`good`, `warn`, `bad`, `muted`).
    pub class: &'static str,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    /// Where its value is written.
    pub value_x: i64,
    pub value_y: i64,
    /// Where its label is written; whether it shows (long series label only some bars).
    pub label_x: i64,
    pub label_y: i64,
    pub show_label: bool,
}

/// A chart: its size and bars, and the top of its scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
    /// The value the full length stands for.
    pub max: i64,
    /// Where the scale's top is written (columns only).
    pub max_x: i64,
    pub max_y: i64,
    /// The baseline (columns) or the left edge of the bars (horizontal).
    pub base: i64,
}

/// One thing to draw: what it is, how many, and its colour class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub label: String,
    pub value: i64,
    pub class: &'static str,
}

impl Item {
    pub fn new(label: impl Into<String>, value: i64, class: &'static str) -> Item {
        Item {
            label: label.into(),
            value,
            class,
        }
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … at or above `max`: a scale that reads well.
pub fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            let candidate = step.saturating_mul(m);
            if candidate >= max || candidate == i64::MAX {
                return candidate;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The length that stands for `value` when `max` is `length` long: proportional, rounded,
/// and never 0 for a value above 0 (a bar that exists is seen).
pub fn scale(value: i64, max: i64, length: i64) -> i64 {
    if value <= 0 || max <= 0 {
        return 0;
    }
    let v = i128::from(value.min(max));
    let scaled = (v * i128::from(length) + i128::from(max) / 2) / i128::from(max);
    i64::try_from(scaled).unwrap_or(length).max(1)
}

/// Horizontal bars, one row each, labels on the left and values after the bar.
pub fn horizontal(items: &[Item]) -> Chart {
    const WIDTH: i64 = 480;
    const LABEL: i64 = 130;
    const LENGTH: i64 = 290;
    const ROW: i64 = 30;
    const BAR: i64 = 20;
    let max = nice_ceiling(items.iter().map(|i| i.value).max().unwrap_or(0).max(1));
    let bars = items
        .iter()
        .zip(0i64..)
        .map(|(item, row)| {
            let y = 6 + row * ROW;
            let width = scale(item.value, max, LENGTH);
            Bar {
                label: item.label.clone(),
                value: item.value,
                class: item.class,
                x: LABEL,
                y,
                width,
                height: BAR,
                value_x: LABEL + width + 6,
                value_y: y + 15,
                label_x: 0,
                label_y: y + 15,
                show_label: true,
            }
        })
        .collect::<Vec<_>>();
    Chart {
        width: WIDTH,
        height: 12 + ROW * items.len() as i64,
        bars,
        max,
        max_x: 0,
        max_y: 0,
        base: LABEL,
    }
}

/// Columns over a baseline, the scale's top written above the first; every
/// `label_every`-th label shows, counted back from the last (which always shows), so that
/// thirty days stay readable. The width is shared by at least `min_slots` columns, so two
/// runs do not make two slabs.
pub fn columns(items: &[Item], label_every: usize, min_slots: usize) -> Chart {
    const WIDTH: i64 = 600;
    const LEFT: i64 = 8;
    const TOP: i64 = 22;
    const HEIGHT: i64 = 120;
    const GAP: i64 = 2;
    let n = items.len().max(min_slots).max(1) as i64;
    let slot = (WIDTH - LEFT) / n;
    let max = nice_ceiling(items.iter().map(|i| i.value).max().unwrap_or(0).max(1));
    let base = TOP + HEIGHT;
    let every = label_every.max(1);
    let last = items.len().saturating_sub(1);
    let bars = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let x = LEFT + i as i64 * slot;
            let height = scale(item.value, max, HEIGHT);
            let width = (slot - GAP).max(1);
            Bar {
                label: item.label.clone(),
                value: item.value,
                class: item.class,
                x,
                y: base - height,
                width,
                height,
                value_x: x + width / 2,
                value_y: base - height - 4,
                label_x: x + width / 2,
                label_y: base + 16,
                show_label: (last - i) % every == 0,
            }
        })
        .collect();
    Chart {
        width: WIDTH,
        height: base + 24,
        bars,
        max,
        max_x: LEFT,
        max_y: TOP - 8,
        base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        let tops: Vec<i64> = [0, 1, 2, 3, 7, 10, 11, 99, 101, 4_999, 5_001]
            .into_iter()
            .map(nice_ceiling)
            .collect();
        assert_eq!(tops, [1, 1, 2, 5, 10, 10, 20, 100, 200, 5_000, 10_000]);
        assert_eq!(nice_ceiling(i64::MAX), i64::MAX);
    }

    #[test]
    fn lengths_are_proportional_and_a_bar_that_exists_shows() {
        assert_eq!(scale(50, 100, 120), 60);
        assert_eq!(scale(100, 100, 120), 120);
        assert_eq!(scale(1, 10_000, 120), 1, "tiny but visible");
        assert_eq!(scale(0, 100, 120), 0);
        assert_eq!(scale(-3, 100, 120), 0);
        assert_eq!(scale(500, 100, 120), 120, "never past the end");
        assert_eq!(scale(5, 0, 120), 0);
        assert_eq!(scale(i64::MAX, i64::MAX, 120), 120, "no overflow");
    }

    #[test]
    fn horizontal_bars_sit_in_rows_with_their_values_after_them() {
        let c = horizontal(&[
            Item::new("working", 8, "good"),
            Item::new("lapsing", 2, "warn"),
            Item::new("stopped", 0, "bad"),
        ]);
        assert_eq!(c.max, 10);
        let widths: Vec<i64> = c.bars.iter().map(|b| b.width).collect();
        assert_eq!(widths, [232, 58, 0]);
        let ys: Vec<i64> = c.bars.iter().map(|b| b.y).collect();
        assert_eq!(ys, [6, 36, 66]);
        assert_eq!(c.bars[0].value_x, 130 + 232 + 6);
        assert_eq!(c.height, 102);
        assert!(c.bars.iter().all(|b| b.show_label));
    }

    #[test]
    fn columns_stand_on_the_baseline_and_label_every_nth() {
        let items: Vec<Item> = (0..30)
            .map(|d| Item::new(format!("d{d}"), if d == 29 { 40 } else { d % 3 }, "good"))
            .collect();
        let c = columns(&items, 7, 1);
        assert_eq!(c.max, 50);
        assert_eq!(c.bars.len(), 30);
        for b in &c.bars {
            assert_eq!(b.y + b.height, c.base, "{} stands on the baseline", b.label);
            assert!(b.x + b.width <= c.width);
        }
        assert_eq!(c.bars[29].height, 96, "40 of 50 on 120 units");
        assert_eq!(c.bars[0].height, 0, "a zero day is there, without height");
        assert_eq!(c.bars[1].height, 2);
        let shown: Vec<&str> = c
            .bars
            .iter()
            .filter(|b| b.show_label)
            .map(|b| b.label.as_str())
            .collect();
        assert_eq!(shown, ["d1", "d8", "d15", "d22", "d29"], "the last always");
        assert_eq!(c.bars[1].x - c.bars[0].x, 19, "(600 - 8) / 30 per day");
    }

    #[test]
    fn few_columns_keep_the_width_of_the_minimum_slots() {
        let c = columns(
            &[Item::new("a", 2, "good"), Item::new("b", 7, "warn")],
            1,
            10,
        );
        assert_eq!(c.bars[1].x - c.bars[0].x, 59, "(600 - 8) / 10");
        assert_eq!(c.bars[0].width, 57);
        assert!(c.bars.iter().all(|b| b.show_label));
    }

    #[test]
    fn an_empty_chart_is_drawn_without_bars() {
        let c = columns(&[], 7, 0);
        assert!(c.bars.is_empty());
        assert_eq!(c.max, 1);
        assert_eq!(horizontal(&[]).bars.len(), 0);
    }
}
