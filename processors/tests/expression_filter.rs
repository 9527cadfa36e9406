//! The expression language: syntax errors with columns, three-valued
//! logic, and `ExpressionFilter` on every real alert against the same
//! conditions evaluated here directly on apache-avro's reading of the files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{manifest, read_with_apache_avro};
use starlog_processors::avro_value::{as_f64, as_str, field};
use starlog_processors::builtins::ExpressionFilter;
use starlog_processors::expr::Expression;
use starlog_processors::{CandidateProcessor, Response};

#[test]
fn syntax_errors_name_the_column() {
    let cases = [
        (
            "magpsf < ",
            10,
            "expected a field name or a value, found the end of the expression",
        ),
        (
            "magpsf < 18 and",
            16,
            "expected a field name or a value, found the end of the expression",
        ),
        (
            "(magpsf < 18",
            13,
            "expected ')', found the end of the expression",
        ),
        (
            "magpsf < 18)",
            12,
            "expected 'and', 'or' or the end, found ')'",
        ),
        ("magpsf < 18 & drb > 0.9", 13, "'&' must be doubled ('&&')"),
        ("band == 'g", 9, "unterminated string"),
        ("magpsf # 3", 8, "unexpected character '#'"),
        ("magpsf < 1.2.3", 10, "\"1.2.3\" is not a number"),
        (
            "ssnamenr is nul",
            13,
            "expected 'null' after 'is', found field \"nul\"",
        ),
        (
            "ssnamenr is not 3",
            17,
            "expected 'null' after 'is not', found number 3",
        ),
        (
            "candidate..ra > 1",
            1,
            "\"candidate..ra\" is not a valid field path",
        ),
        (
            "a < 1 b",
            7,
            "expected 'and', 'or' or the end, found field \"b\"",
        ),
        (
            "",
            1,
            "expected a field name or a value, found the end of the expression",
        ),
    ];
    for (src, column, message) in cases {
        let err = Expression::parse(src).unwrap_err();
        assert_eq!(
            (err.column, err.message.as_str()),
            (column, message),
            "{src:?}"
        );
    }
    let deep = format!("{}x{}", "(".repeat(100), ")".repeat(100));
    assert!(Expression::parse(&deep)
        .unwrap_err()
        .message
        .contains("nesting deeper than 64"));
    // Columns count characters, not bytes.
    assert_eq!(Expression::parse("'é' == ?").unwrap_err().column, 8);
}

#[test]
fn operators_and_precedence_parse() {
    for ok in [
        "magpsf < 18 and drb > 0.9",
        "magpsf<18&&drb>0.9",
        "not (a = 1 or b <> 2) and c != 'x' || d >= -1.5e3",
        "candidate.isdiffpos == \"t\" and !is_solar_system",
        "x is not null and y IS NULL",
        "true",
        "flag",
    ] {
        Expression::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // `and` binds tighter than `or`.
    let e = Expression::parse("a or b and c").unwrap();
    assert!(matches!(e.root(), starlog_processors::expr::Expr::Or(items) if items.len() == 2));
}

fn filter(src: &str) -> ExpressionFilter {
    ExpressionFilter::new(Expression::parse(src).unwrap())
}

#[test]
fn real_alerts_filtered_like_a_direct_evaluation() {
    let mut bright_real = filter("magpsf < 18 and drb > 0.9");
    let mut g_or_high_rb = filter("(band == 'g' or candidate.rb >= 0.8) and not is_solar_system");
    let mut null_drb = filter("drb is null");
    let mut rubin_reliable = filter("family = 'Rubin' and reliability > 0.99");
    let mut ss_named = filter("solar_system is not null and ssnamenr != 'null'");
    let mut unknown_is_skip = filter("not (magpsf > 100)");
    let mut counts = [0usize; 6];
    let rows = manifest();
    for row in &rows {
        let mut c = common::candidate(row);
        let (_, raw) = read_with_apache_avro(&row.path());
        let ztf = row.is_ztf();
        let det = field(&raw, if ztf { "candidate" } else { "diaSource" }).unwrap();
        let num = |n: &str| field(det, n).and_then(as_f64);
        let pass = |p: &mut ExpressionFilter, c: &mut starlog_processors::Candidate| {
            matches!(p.process(c), Response::Pass)
        };

        let want = matches!((num("magpsf"), num("drb")), (Some(m), Some(d)) if m < 18.0 && d > 0.9);
        assert_eq!(pass(&mut bright_real, &mut c), want, "{}", row.file());
        counts[0] += usize::from(want);

        let band_g = if ztf {
            row.get("fid") == "1"
        } else {
            row.get("fid") == "g"
        };
        let rb_high = num("rb").is_some_and(|r| r >= 0.8);
        let ss = !row.get("ssnamenr").is_empty();
        // Three-valued: `candidate.rb` is null (unknown) for Rubin, so
        // `band == 'g' or unknown` is true only when the band is g.
        let want = (band_g || rb_high) && !ss;
        assert_eq!(pass(&mut g_or_high_rb, &mut c), want, "{}", row.file());
        counts[1] += usize::from(want);

        let want = num("drb").is_none();
        assert_eq!(pass(&mut null_drb, &mut c), want, "{}", row.file());
        counts[2] += usize::from(want);

        let want = !ztf && num("reliability").is_some_and(|r| r > 0.99);
        assert_eq!(pass(&mut rubin_reliable, &mut c), want, "{}", row.file());
        counts[3] += usize::from(want);

        let ssn = field(det, "ssnamenr").and_then(as_str);
        let want = ss && ssn.is_some_and(|s| s != "null");
        assert_eq!(pass(&mut ss_named, &mut c), want, "{}", row.file());
        counts[4] += usize::from(want);

        // Rubin has no magpsf: unknown, and `not unknown` is still unknown.
        let want = num("magpsf").is_some_and(|m| m <= 100.0);
        assert_eq!(pass(&mut unknown_is_skip, &mut c), want, "{}", row.file());
        counts[5] += usize::from(want);
    }
    // Every filter both passes and skips something, so none is vacuous.
    for (i, n) in counts.iter().enumerate() {
        assert!(
            *n > 0 && *n < rows.len(),
            "filter {i} passed {n} of {}",
            rows.len()
        );
    }
}
