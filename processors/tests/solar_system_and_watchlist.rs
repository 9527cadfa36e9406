//! `SolarSystemFilter` and `WatchlistFilter` on every real alert, against
//! expectations computed independently: the manifest's `ssnamenr` column
//! for the solar-system filter, and a direct distance check for the watch list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use apache_avro::types::Value;
use common::manifest;
use starlog_processors::builtins::{
    SolarSystemAction, SolarSystemFilter, WatchlistEntry, WatchlistFilter,
};
use starlog_processors::sky::angular_distance_deg;
use starlog_processors::{Candidate, CandidateProcessor, Response};

fn passes(p: &mut dyn CandidateProcessor, c: &mut Candidate) -> bool {
    match p.process(c) {
        Response::Pass => true,
        Response::Skip => false,
        Response::Fail(e) => panic!("{e}"),
        Response::DeadLetter(reason) => panic!("dead-lettered: {reason}"),
    }
}

#[test]
fn solar_system_filter_selects_exactly_the_associated_alerts() {
    let rows = manifest();
    let mut include = SolarSystemFilter::new(SolarSystemAction::Include, None);
    let mut exclude = SolarSystemFilter::new(SolarSystemAction::Exclude, None);
    // Targets: a ZTF number that appears twice and a Rubin ssObjectId
    // (a designation is checked below, on a renamed alert).
    let targets = vec!["32450".to_owned(), "21164719644750924".to_owned()];
    let mut targeted = SolarSystemFilter::new(SolarSystemAction::Include, Some(targets));
    let (mut included, mut excluded, mut target_hits) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut candidates: Vec<Candidate> = rows.iter().map(common::candidate).collect();
    for (row, c) in rows.iter().zip(&mut candidates) {
        if passes(&mut include, c) {
            included.insert(row.file().to_owned());
        }
        if passes(&mut exclude, c) {
            excluded.insert(row.file().to_owned());
        }
        if passes(&mut targeted, c) {
            target_hits.insert(row.file().to_owned());
        }
    }
    let associated: BTreeSet<String> = rows
        .iter()
        .filter(|r| !r.get("ssnamenr").is_empty())
        .map(|r| r.file().to_owned())
        .collect();
    let others: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.get("ssnamenr").is_empty())
        .map(|r| r.file().to_owned())
        .collect();
    assert_eq!(associated.len(), 62);
    assert_eq!(included, associated);
    assert_eq!(excluded, others);
    let want: BTreeSet<String> = rows
        .iter()
        .filter(|r| matches!(r.get("ssnamenr"), "32450" | "ssObjectId=21164719644750924"))
        .map(|r| r.file().to_owned())
        .collect();
    assert_eq!(want.len(), 4, "2 + 2 in the manifest");
    assert_eq!(target_hits, want);

    // Exclude with targets drops only those objects.
    let mut exclude_some =
        SolarSystemFilter::new(SolarSystemAction::Exclude, Some(vec!["32450".into()]));
    let mut kept = 0;
    for c in &mut candidates {
        kept += usize::from(passes(&mut exclude_some, c));
    }
    assert_eq!(kept, 138 - 2);

    // A designation: no licensed ZTF alert names its object by one, so a
    // real solar-system alert is renamed `(97125)1999VG102`, the form ZTF's
    // 2018 samples used. A target written with a space and different case,
    // or the number alone, selects it; other targets do not.
    let ztf = rows
        .iter()
        .zip(&candidates)
        .find(|(r, _)| r.is_ztf() && !r.get("ssnamenr").is_empty())
        .map(|(_, c)| c)
        .unwrap();
    let mut renamed = with_ssnamenr(ztf, "(97125)1999VG102");
    for (action, targets, want) in [
        (SolarSystemAction::Include, vec!["1999 vg102"], true),
        (SolarSystemAction::Include, vec!["97125"], true),
        (SolarSystemAction::Include, vec!["32450"], false),
        (SolarSystemAction::Exclude, vec!["97125"], false),
        (SolarSystemAction::Exclude, vec!["1999 VG102"], false),
        (SolarSystemAction::Exclude, vec!["32450"], true),
    ] {
        let targets: Vec<String> = targets.into_iter().map(str::to_owned).collect();
        let mut f = SolarSystemFilter::new(action, Some(targets.clone()));
        assert_eq!(passes(&mut f, &mut renamed), want, "{targets:?}");
    }
}

/// A ZTF candidate with `candidate.ssnamenr` set to `name`.
fn with_ssnamenr(c: &Candidate, name: &str) -> Candidate {
    let mut value = c.value().clone();
    let Value::Record(fields) = &mut value else {
        panic!("a ZTF alert is a record")
    };
    let (_, cand) = fields.iter_mut().find(|(n, _)| n == "candidate").unwrap();
    let Value::Record(cand) = cand else {
        panic!("candidate is a record")
    };
    let (_, ss) = cand.iter_mut().find(|(n, _)| n == "ssnamenr").unwrap();
    *ss = match ss {
        Value::Union(i, _) => Value::Union(*i, Box::new(Value::String(name.to_owned()))),
        _ => Value::String(name.to_owned()),
    };
    let renamed = Candidate::new(value, Arc::clone(c.schema())).unwrap();
    assert_eq!(
        renamed.solar_system().and_then(|s| s.name.as_deref()),
        Some(name)
    );
    renamed
}

#[test]
fn watchlist_passes_and_annotates_alerts_within_each_targets_radius() {
    let rows = manifest();
    let candidates: Vec<Candidate> = rows.iter().map(common::candidate).collect();
    // Targets near three real alerts, offset by known amounts in dec, with
    // radii just above and below the offset; one target at ra = 359.9999
    // watching an alert moved to ra = 0.0001.
    let pick = |i: usize| (candidates[i].ra(), candidates[i].dec());
    let (a, b, c) = (pick(0), pick(60), pick(120));
    let entries = vec![
        WatchlistEntry {
            name: Arc::from("near-a"),
            ra: a.0,
            dec: a.1 + 5.0 / 3600.0,
            radius_arcsec: 6.0,
        },
        WatchlistEntry {
            name: Arc::from("miss-b"),
            ra: b.0,
            dec: b.1 + 5.0 / 3600.0,
            radius_arcsec: 4.0,
        },
        WatchlistEntry {
            name: Arc::from("wide-c"),
            ra: c.0,
            dec: c.1 - 0.5,
            radius_arcsec: 1900.0,
        },
        WatchlistEntry {
            name: Arc::from("wrap"),
            ra: 359.9999,
            dec: 10.0,
            radius_arcsec: 1.0,
        },
    ];
    let mut filter = WatchlistFilter::new("my-list", entries.clone());
    let mut moved = common::moved(&candidates[0], 0.0001, 10.0);
    let mut all: Vec<Candidate> = candidates;
    all.push(moved.clone());
    let mut passed = 0;
    for cand in &mut all {
        let (ra, dec) = (cand.ra(), cand.dec());
        let want: Vec<&str> = entries
            .iter()
            .filter(|e| angular_distance_deg(ra, dec, e.ra, e.dec) * 3600.0 <= e.radius_arcsec)
            .map(|e| &*e.name)
            .collect();
        assert_eq!(passes(&mut filter, cand), !want.is_empty());
        let mut got: Vec<&str> = cand.matches().map(|m| &*m.sourceid).collect();
        got.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(got, want);
        for m in cand.matches() {
            assert_eq!(&*m.catalogid, "my-list");
            assert_eq!(m.candid, cand.alert_id());
        }
        passed += usize::from(!want.is_empty());
    }
    assert!(
        passed >= 3,
        "near-a, wide-c and wrap each catch something ({passed})"
    );
    assert!(passes(&mut filter, &mut moved));
    assert_eq!(
        moved.matches().map(|m| &*m.sourceid).collect::<Vec<_>>(),
        vec!["wrap"]
    );
    let d = moved.matches().next().unwrap().distance * 3600.0;
    // 0.0002 degree of ra at dec 10 (the small-angle value is exact to 1e-9 here).
    assert!(
        (d - 0.0002 * 10f64.to_radians().cos() * 3600.0).abs() < 1e-6,
        "{d} arcsec across ra = 0"
    );
}
