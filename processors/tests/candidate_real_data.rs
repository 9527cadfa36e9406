//! `Candidate` over every alert file in the repository's `testdata/`, every
//! ZTF schema version it holds (3.1, 3.3, 4.01; see its README for the
//! older versions left out) and every Rubin version, decoded from container
//! files, from the Confluent wire format and from bare Avro with the
//! shipped named schemas. Expected values come from `manifest.csv` (written
//! by an independent Python reader) or from apache-avro's own reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::Schema;
use common::{encode_body, manifest, read_with_apache_avro, testdata_dir, ManifestRow};
use starlog_processors::avro_value::{as_f64, as_i64, field, path};
use starlog_processors::decode::named_schema;
use starlog_processors::decode::{confluent, MemorySchemaRegistry, SchemaSource};
use starlog_processors::{
    AlertDecoder, AlertFamily, CutoutKind, DecodeError, InputFormat, ObjectId,
};

fn num(row: &ManifestRow, col: &str) -> f64 {
    row.get(col)
        .parse()
        .unwrap_or_else(|e| panic!("{} {col}={:?}: {e}", row.file(), row.get(col)))
}

fn count(row: &ManifestRow, col: &str) -> usize {
    let v = row.get(col);
    if v.is_empty() {
        0
    } else {
        v.parse().unwrap()
    }
}

#[test]
fn accessors_match_the_manifest_for_every_file() {
    for row in manifest() {
        let f = row.file();
        let c = common::candidate(&row);
        let (_, raw) = read_with_apache_avro(&row.path());
        assert_eq!(
            c.family(),
            if row.is_ztf() {
                AlertFamily::Ztf
            } else {
                AlertFamily::Rubin
            },
            "{f}"
        );
        assert_eq!(c.alert_id().to_string(), row.get("alert_id"), "{f}");
        assert_eq!(c.ra(), num(&row, "ra"), "{f}");
        assert_eq!(c.dec(), num(&row, "dec"), "{f}");
        assert_eq!(c.previous_detection_count(), count(&row, "n_prv"), "{f}");
        assert_eq!(c.previous_detections().len(), count(&row, "n_prv"), "{f}");
        assert_eq!(c.forced_photometry().len(), count(&row, "n_forced"), "{f}");
        let has_cutouts = row.get("has_cutouts") == "True";
        for kind in CutoutKind::ALL {
            let cut = c.cutout(kind);
            assert_eq!(
                cut.is_some_and(|b| !b.is_empty()),
                has_cutouts,
                "{f} {kind:?}"
            );
        }
        let ss = row.get("ssnamenr");
        if row.is_ztf() {
            assert_eq!(
                c.object_id(),
                Some(&ObjectId::Ztf(row.get("object_id").to_owned())),
                "{f}"
            );
            let mjd = num(&row, "jd") - 2_400_000.5;
            assert_eq!(c.mjd(), Some(mjd), "{f}");
            let band = match row.get("fid") {
                "1" => "g",
                "2" => "r",
                other => panic!("{f}: unexpected fid {other}"),
            };
            assert_eq!(c.band(), Some(band), "{f}");
            assert_eq!(
                c.solar_system().and_then(|s| s.name.as_deref()),
                (!ss.is_empty()).then_some(ss),
                "{f}"
            );
            // Independent reads of the raw record for the rest.
            let cand = field(&raw, "candidate").unwrap();
            let drb = field(cand, "drb").and_then(as_f64);
            let rb = field(cand, "rb").and_then(as_f64);
            assert_eq!(c.real_bogus(), drb.or(rb), "{f}");
            assert_eq!(c.magnitude(), field(cand, "magpsf").and_then(as_f64), "{f}");
            assert_eq!(
                c.magnitude_err(),
                field(cand, "sigmapsf").and_then(as_f64),
                "{f}"
            );
            if c.is_solar_system() {
                let d = field(cand, "ssdistnr").and_then(as_f64).unwrap();
                assert_eq!(c.solar_system().unwrap().distance_arcsec, Some(d), "{f}");
            }
        } else {
            assert_eq!(c.band(), Some(row.get("fid")), "{f}");
            match row.get("object_id") {
                "" => {
                    let from_object = path(&raw, &["diaObject", "diaObjectId"]).and_then(as_i64);
                    assert!(from_object.is_some(), "{f}: samples carry a diaObject");
                    assert_eq!(
                        c.object_id(),
                        from_object.map(ObjectId::Rubin).as_ref(),
                        "{f}"
                    );
                }
                "0" => assert_eq!(c.object_id(), None, "{f}: 0 is no object"),
                id => assert_eq!(
                    c.object_id(),
                    Some(&ObjectId::Rubin(id.parse().unwrap())),
                    "{f}"
                ),
            }
            match ss.strip_prefix("ssObjectId=") {
                None => assert!(ss.is_empty() && !c.is_solar_system(), "{f}"),
                // The samples up to 7.4 carry an ssObject record but no
                // diaSource.ssObjectId; the name comes from the record.
                Some("None") => {
                    let id = path(&raw, &["ssObject", "ssObjectId"])
                        .and_then(as_i64)
                        .unwrap();
                    assert_eq!(
                        c.solar_system().and_then(|s| s.name.clone()),
                        Some(id.to_string()),
                        "{f}"
                    );
                }
                Some(id) => assert_eq!(
                    c.solar_system().and_then(|s| s.name.as_deref()),
                    Some(id),
                    "{f}"
                ),
            }
            let source = field(&raw, "diaSource").unwrap();
            assert_eq!(
                c.real_bogus(),
                field(source, "reliability").and_then(as_f64),
                "{f}"
            );
            let mjd = field(source, "midpointMjdTai")
                .or_else(|| field(source, "midPointTai"))
                .and_then(as_f64);
            assert_eq!(c.mjd(), mjd, "{f}");
            let flux = field(source, "psfFlux")
                .or_else(|| field(source, "psFlux"))
                .and_then(as_f64);
            match flux {
                Some(fl) if fl > 0.0 => {
                    let m = c.magnitude().unwrap();
                    assert!((m - (31.4 - 2.5 * fl.log10())).abs() < 1e-9, "{f}");
                }
                _ => assert_eq!(c.magnitude(), None, "{f}"),
            }
        }
        // The raw value is the whole record.
        assert!(
            common::same(c.value(), &raw),
            "{f}: value differs from apache-avro's read"
        );
    }
}

#[test]
fn light_curve_points_follow_the_raw_history() {
    let rows = manifest();
    let row = rows
        .iter()
        .find(|r| {
            r.file()
                .ends_with("kowalski/20231012/2475433850015015022.avro")
        })
        .unwrap();
    let c = common::candidate(row);
    let (_, raw) = read_with_apache_avro(&row.path());
    let prv =
        starlog_processors::avro_value::as_array(field(&raw, "prv_candidates").unwrap()).unwrap();
    let points = c.previous_detections();
    assert_eq!(points.len(), prv.len());
    let mut detections = 0;
    for (p, r) in points.iter().zip(prv) {
        let jd = field(r, "jd").and_then(as_f64).unwrap();
        assert_eq!(p.mjd, Some(jd - 2_400_000.5));
        assert_eq!(p.magnitude, field(r, "magpsf").and_then(as_f64));
        assert_eq!(p.source_id, field(r, "candid").and_then(as_i64));
        assert_eq!(
            p.limiting_magnitude,
            field(r, "diffmaglim").and_then(as_f64)
        );
        detections += usize::from(p.source_id.is_some());
    }
    assert!(
        detections > 0 && detections < points.len(),
        "ZTF history mixes detections and upper limits"
    );
    assert_eq!(
        c.cutout(CutoutKind::Science).map(|b| &b[..2]),
        Some(&[0x1f, 0x8b][..]),
        "gzipped FITS"
    );
}

/// The shipped schema folder of a manifest row, if its writer schema is one.
fn shipped_schema(row: &ManifestRow) -> Option<(Vec<PathBuf>, String)> {
    let version = row.get("matches_shipped_schema");
    if version.is_empty() {
        return None;
    }
    let (dir, top) = if row.is_ztf() {
        (
            testdata_dir().join("ztf/schema").join(version),
            "ztf.alert".to_owned(),
        )
    } else {
        let (major, minor) = version.split_once('.').unwrap();
        (
            testdata_dir().join("lsst/schema").join(major).join(minor),
            format!("lsst.v{major}_{minor}.alert"),
        )
    };
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avsc"))
        .collect();
    Some((files, top))
}

#[test]
fn bare_avro_with_the_shipped_named_schemas() {
    let mut versions = BTreeSet::new();
    let mut decoders: std::collections::HashMap<(String, bool), AlertDecoder> =
        std::collections::HashMap::new();
    for row in manifest() {
        let Some((files, top)) = shipped_schema(&row) else {
            continue;
        };
        let (writer, raw) = read_with_apache_avro(&row.path());
        let key = (row.get("matches_shipped_schema").to_owned(), row.is_ztf());
        let decoder = decoders.entry(key).or_insert_with(|| {
            let (schema, _) = named_schema::from_files(&files, &top)
                .unwrap_or_else(|e| panic!("{}: {e}", row.file()));
            assert_eq!(
                schema.canonical_form(),
                writer.canonical_form(),
                "{}: the README says they match",
                row.file()
            );
            AlertDecoder::new(InputFormat::Bare).with_bare_schema(Arc::new(schema))
        });
        let body = encode_body(&writer, &raw);
        let c = decoder
            .decode(&body)
            .unwrap_or_else(|e| panic!("{}: {e}", row.file()))
            .remove(0);
        assert!(
            common::same(c.value(), &raw),
            "{}: value differs",
            row.file()
        );
        assert_eq!(c.alert_id().to_string(), row.get("alert_id"));
        // Extra bytes after the record are an error, not ignored.
        let mut longer = body.clone();
        longer.push(0);
        assert!(
            matches!(
                decoder.decode(&longer),
                Err(DecodeError::TrailingBytes { count: 1, .. })
            ),
            "{}",
            row.file()
        );
        versions.insert(row.get("matches_shipped_schema").to_owned());
    }
    // ZTF 3.1, 3.3, 4.01 and LSST 3.0 .. 11.1.
    let expected: BTreeSet<String> = [
        "3.0", "3.1", "3.3", "4.01", "4.0", "5.0", "6.0", "6.1", "7.0", "7.1", "7.2", "7.3", "7.4",
        "8.0", "9.0", "10.0", "11.0", "11.1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(versions, expected);
}

/// Every ZTF schema folder decodes an alert written with another version:
/// the alert of a neighbouring version is resolved into that schema (Avro
/// schema resolution), encoded with it, and decoded bare.
#[test]
fn every_ztf_schema_version_decodes() {
    let rows = manifest();
    fn source_for(v: &str) -> &str {
        match v {
            "3.1" => "3.3",
            "3.3" => "4.01",
            "4.01" => "3.3",
            other => panic!("no source version for ZTF schema {other}"),
        }
    }
    let mut folders: Vec<String> = std::fs::read_dir(testdata_dir().join("ztf/schema"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders, ["3.1", "3.3", "4.01"]);
    for v in &folders {
        let dir = testdata_dir().join("ztf/schema").join(v);
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let (schema, _) =
            named_schema::from_files(&files, "ztf.alert").unwrap_or_else(|e| panic!("{v}: {e}"));
        let row = rows
            .iter()
            .find(|r| r.is_ztf() && r.get("matches_shipped_schema") == source_for(v))
            .unwrap();
        let (_, mut raw) = read_with_apache_avro(&row.path());
        if let Value::Record(fields) = &mut raw {
            // Old schemas declare some history fields non-null that newer
            // alerts leave null; the history is not what is tested here.
            for (name, value) in fields.iter_mut() {
                if name == "prv_candidates" {
                    *value = Value::Null;
                }
            }
            // Old schemas give fields the newer ones dropped a null default
            // on a ["float", "null"] union, which resolution cannot use:
            // give those fields explicit nulls.
            let text = std::fs::read_to_string(dir.join("candidate.avsc")).unwrap();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            for (name, value) in fields.iter_mut() {
                if let (true, Value::Record(cand)) = (name == "candidate", value) {
                    for f in json["fields"].as_array().unwrap() {
                        let n = f["name"].as_str().unwrap();
                        if !cand.iter().any(|(k, _)| k == n) {
                            cand.push((n.to_owned(), Value::Null));
                        }
                    }
                }
            }
        }
        let resolved: Value = raw
            .clone()
            .resolve(&schema)
            .unwrap_or_else(|e| panic!("{v}: {e}"));
        let body = encode_body(&schema, &resolved);
        let c = AlertDecoder::new(InputFormat::Bare)
            .with_bare_schema(Arc::new(schema))
            .decode(&body)
            .unwrap_or_else(|e| panic!("{v}: {e}"))
            .remove(0);
        assert_eq!(c.alert_id().to_string(), row.get("alert_id"), "{v}");
        assert_eq!(c.ra(), num(row, "ra"), "{v}");
        assert_eq!(c.dec(), num(row, "dec"), "{v}");
        assert_eq!(
            c.object_id().map(ToString::to_string).as_deref(),
            Some(row.get("object_id")),
            "{v}"
        );
    }
}

#[test]
fn confluent_wire_format_through_a_cached_registry() {
    let registry = Arc::new(MemorySchemaRegistry::new());
    let decoder = AlertDecoder::new(InputFormat::Confluent).with_schema_source(registry.clone());
    let mut next_id = 10_000;
    let mut ids: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for row in manifest() {
        let (writer, raw) = read_with_apache_avro(&row.path());
        let name = writer.name().unwrap().to_string();
        let text = serde_json::to_string(&writer).unwrap();
        if let Some(&id) = ids.get(&text) {
            let c = decoder
                .decode(&confluent::frame(id, &encode_body(&writer, &raw)))
                .unwrap()
                .remove(0);
            assert!(
                common::same(c.value(), &raw),
                "{}: value differs",
                row.file()
            );
            continue;
        }
        // Rubin's registry ids are major*100 + minor (lsst.v9_0 -> 900).
        let id = match name
            .strip_prefix("lsst.v")
            .and_then(|s| s.strip_suffix(".alert"))
        {
            Some(v) => {
                let (major, minor) = v.split_once('_').unwrap();
                major.parse::<u32>().unwrap() * 100 + minor.parse::<u32>().unwrap()
            }
            None => {
                next_id += 1;
                next_id
            }
        };
        registry.insert_with_id(id, &text).unwrap();
        ids.insert(text, id);
        let framed = confluent::frame(id, &encode_body(&writer, &raw));
        let c = decoder
            .decode(&framed)
            .unwrap_or_else(|e| panic!("{}: {e}", row.file()))
            .remove(0);
        assert!(
            common::same(c.value(), &raw),
            "{}: value differs",
            row.file()
        );
        assert_eq!(c.alert_id().to_string(), row.get("alert_id"));
    }
    assert_eq!(
        registry.schema_text(900).map(|t| t.contains("lsst.v9_0")),
        Ok(true)
    );
    // Unknown ids are a typed error naming the id.
    let err = decoder
        .decode(&confluent::frame(4242, &[0, 1]))
        .unwrap_err();
    assert!(matches!(err, DecodeError::Schema { id: 4242, .. }), "{err}");
    assert!(err.to_string().contains("4242"));
}

#[test]
fn auto_detection_and_schema_sharing() {
    let rows = manifest();
    let decoder = AlertDecoder::default();
    let ztf31: Vec<&ManifestRow> = rows
        .iter()
        .filter(|r| r.get("matches_shipped_schema") == "3.1")
        .take(20)
        .collect();
    let first = decoder.decode(&ztf31[0].bytes()).unwrap().remove(0);
    for r in &ztf31[1..] {
        let c = decoder.decode(&r.bytes()).unwrap().remove(0);
        assert!(
            Arc::ptr_eq(c.schema(), first.schema()),
            "one parsed schema per distinct header"
        );
    }
    assert_eq!(decoder.ocf_schema_cache().len(), 1);
    // Confluent framing without a registry, and unknown framing.
    assert!(matches!(
        decoder.decode(&[0, 0, 0, 0, 7, 1]),
        Err(DecodeError::NoSchemaSource { id: 7 })
    ));
    assert!(matches!(
        decoder.decode(b"{\"json\": 1}"),
        Err(DecodeError::Unrecognized { first: b'{' })
    ));
    assert!(matches!(decoder.decode(&[]), Err(DecodeError::Empty)));
}

#[test]
fn records_that_are_not_alerts_are_rejected_with_the_reason() {
    let schema: Schema = Schema::parse_str(
        r#"{"type":"record","name":"other","fields":[{"name":"x","type":"long"}]}"#,
    )
    .unwrap();
    let decoder = AlertDecoder::new(InputFormat::Bare).with_bare_schema(Arc::new(schema));
    let err = decoder.decode(&[2]).unwrap_err();
    assert!(
        err.to_string().contains("not a ZTF or Rubin alert"),
        "{err}"
    );

    // A ZTF-shaped record without a position names the missing field.
    let row = manifest().into_iter().find(|r| r.is_ztf()).unwrap();
    let c = common::candidate(&row);
    let mut value = c.value().clone();
    if let Value::Record(fields) = &mut value {
        for (n, v) in fields.iter_mut() {
            if n == "candidate" {
                if let Value::Record(inner) = v {
                    inner.retain(|(k, _)| k != "ra");
                }
            }
        }
    }
    let err = starlog_processors::Candidate::new(value, Arc::clone(c.schema())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ZTF alert: field candidate.ra is missing, null or of the wrong type"
    );
}
