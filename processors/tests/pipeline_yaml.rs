//! Pipelines from YAML: every kind of configuration fault is rejected at
//! load with its YAML path, and a loaded pipeline runs real alerts end to
//! end through the injected sink and registry, dead-lettering bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{manifest, testdata_dir};
use starlog_processors::config::{
    BuildContext, ConfigError, PipelineSpec, ProcessorRegistry, ProcessorSpec,
};
use starlog_processors::dead_letter::{
    OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER, TOPIC_HEADER,
};
use starlog_processors::decode::{MemorySchemaRegistry, SchemaSource};
use starlog_processors::sink::{MemoryTopicSink, SinkError};
use starlog_processors::{
    AlertDecoder, Candidate, CandidateProcessor, InputFormat, InputRecord, ProcessError,
    RecordOutcome, Response,
};

fn load(yaml: &str) -> Result<PipelineSpec, ConfigError> {
    PipelineSpec::from_yaml_str(
        yaml,
        "test.yaml",
        &testdata_dir(),
        &ProcessorRegistry::with_builtins(),
    )
}

fn load_err(yaml: &str) -> String {
    load(yaml).map(|_| ()).unwrap_err().to_string()
}

const HEAD: &str = "component:\n  type: processing-node\n  source: { topic: ztf-buffer, group: g }\n  processors:\n";

#[test]
fn the_design_example_names_the_unknown_class() {
    let yaml = r#"
component:
  type: processing-node          # or: in-broker
  source: { topic: ztf-buffer, group: solar-system-to-db }
  processors:
    - class: SolarSystemFilter
      params: { action: include, targets: [saturn, jupiter] }
    - class: KafkaTopicWriter
      params: { topic: solar-system }
    - class: MariaDBWriter
      params: { table: ztfevents, url: "mysql://user@host:3306/db" }
"#;
    let err = load_err(yaml);
    assert!(err.starts_with("component.processors[2].class: unknown processor class \"MariaDBWriter\" (known: AvroFileWriter, CrossmatchProcessor, "), "{err}");
}

#[test]
fn parameter_faults_carry_their_yaml_path() {
    let cases = [
        ("    - class: CrossmatchProcessor\n      params: { catalog: catalogs/mangrove_radec.csv }\n", "component.processors[0].params.radius: missing, expected a number of arcsec"),
        ("    - class: SolarSystemFilter\n      params: { action: include }\n    - class: CrossmatchProcessor\n      params: { catalog: catalogs/mangrove_radec.csv, radius: ten }\n", "component.processors[1].params.radius: expected a number of arcsec, found a string (\"ten\")"),
        ("    - class: CrossmatchProcessor\n      params: { catalog: c.csv, radius: -2 }\n", "component.processors[0].params.radius: expected a number of arcsec greater than 0, found -2"),
        ("    - class: CrossmatchProcessor\n      params: { catalog: c.csv, radius: 2, radus: 3 }\n", "component.processors[0].params.radus: unknown parameter (known: catalog, catalog_id, dec_column, id_column, ra_column, radius, require_match)"),
        ("    - class: SolarSystemFilter\n      params: { action: maybe }\n", "component.processors[0].params.action: expected one of include, exclude, found a string (\"maybe\")"),
        ("    - class: SolarSystemFilter\n", "component.processors[0].params.action: missing, expected one of include, exclude"),
        ("    - class: SolarSystemFilter\n      params: [include]\n", "component.processors[0].params: expected a mapping, found a list"),
        ("    - class: SolarSystemFilter\n      params: { action: include, targets: [] }\n", "component.processors[0].params.targets: expected at least one target (or leave targets out)"),
        ("    - class: SolarSystemFilter\n      params: { action: include, targets: [{a: 1}] }\n", "component.processors[0].params.targets[0]: expected a solar-system object name or number, found a mapping"),
        ("    - class: ExpressionFilter\n      params: { expression: \"magpsf < and drb > 0.9\" }\n", "component.processors[0].params.expression: column 10: expected a field name or a value, found 'and'"),
        ("    - class: ExpressionFilter\n      params: { expression: 18 }\n", "component.processors[0].params.expression: expected a filter expression such as \"magpsf < 18 and drb > 0.9\", found the number 18"),
        ("    - class: WatchlistFilter\n      params: { targets: [{name: a, ra: 1, dec: 2, radius: 3}, {name: b, ra: 1, dec: 95, radius: 3}] }\n", "component.processors[0].params.targets[1].dec: expected a declination in [-90, 90] degrees, found 95"),
        ("    - class: WatchlistFilter\n      params: { targets: [{name: a, ra: 1, dec: 2}] }\n", "component.processors[0].params.targets[0].radius: missing, expected a number of arcsec (or set params.radius for all targets)"),
        ("    - class: WatchlistFilter\n      params: { targets: [{name: a, ra: 1, dec: 2, radius: 1, colour: red}] }\n", "component.processors[0].params.targets[0].colour: unknown parameter (known: dec, name, ra, radius)"),
        ("    - class: KafkaTopicWriter\n      params: { format: avro }\n", "component.processors[0].params.topic: missing, expected a topic name"),
        ("    - class: KafkaTopicWriter\n      params: { topic: t, format: xml }\n", "component.processors[0].params.format: expected one of avro, json, found a string (\"xml\")"),
        ("    - class: KafkaTopicWriter\n      params: { topic: t, include_cutouts: true }\n", "component.processors[0].params.include_cutouts: only applies to format: json (Avro output always keeps cutouts)"),
        ("    - class: AvroFileWriter\n      params: { directory: out, max_records: 0 }\n", "component.processors[0].params.max_records: expected a positive number of records, found 0"),
        ("    - class: AvroFileWriter\n      params: { directory: out, max_records: -5 }\n", "component.processors[0].params.max_records: expected a positive number of records, found the number -5"),
        ("    - params: { action: include }\n", "component.processors[0].class: missing, expected a processor class name"),
        ("    - class: SolarSystemFilter\n      parms: { action: include }\n", "component.processors[0].parms: unknown parameter (known: class, name, params)"),
        ("    - SolarSystemFilter\n", "component.processors[0]: expected a mapping, found a string (\"SolarSystemFilter\")"),
    ];
    for (processors, expected) in cases {
        assert_eq!(
            load_err(&format!("{HEAD}{processors}")),
            expected,
            "for:\n{processors}"
        );
    }
}

#[test]
fn component_faults_carry_their_yaml_path() {
    let ok = "  processors:\n    - class: SolarSystemFilter\n      params: { action: include }\n";
    let cases = [
        (format!("component:\n  type: node\n  source: {{ topic: t }}\n{ok}"), "component.type: expected one of processing-node, in-broker, found a string (\"node\")"),
        (format!("component:\n  type: in-broker\n{ok}"), "component.source: missing, expected a mapping with a topic"),
        (format!("component:\n  type: in-broker\n  source: {{ group: g }}\n{ok}"), "component.source.topic: missing, expected a topic name"),
        ("component:\n  type: in-broker\n  source: { topic: t }\n  processors: []\n".to_owned(), "component.processors: expected at least one processor"),
        ("component:\n  type: in-broker\n  source: { topic: t }\n".to_owned(), "component.processors: missing, expected a list of processors"),
        (format!("component:\n  type: in-broker\n  source: {{ topic: t }}\n  input: {{ format: avro }}\n{ok}"), "component.input.schema: missing, format avro (bare) needs a schema: { name, files }"),
        (format!("component:\n  type: in-broker\n  source: {{ topic: t }}\n  input: {{ format: avro, schema: {{ name: ztf.alert, files: [ztf/schema/3.3/alert.avsc] }} }}\n{ok}"), "component.input.schema.files: type \"ztf.alert.candidate\" (used in ztf.alert) is defined in none of the given files"),
        (format!("component:\n  type: in-broker\n  source: {{ topic: t }}\n  extra: 1\n{ok}"), "component.extra: unknown parameter (known: dead_letter, input, name, processors, source, type)"),
        (format!("component:\n  type: in-broker\n  source: {{ topic: t }}\n{ok}other: 1\n"), "other: unknown parameter (known: component)"),
    ];
    for (yaml, expected) in cases {
        assert_eq!(load_err(&yaml), expected, "for:\n{yaml}");
    }
    let err = load_err("component: [unclosed");
    assert!(err.starts_with("test.yaml: not valid YAML: "), "{err}");
}

#[test]
fn build_faults_name_the_step() {
    let sink: Arc<MemoryTopicSink> = Arc::new(MemoryTopicSink::new());
    let spec = load(&format!("{HEAD}    - class: SolarSystemFilter\n      params: {{ action: include }}\n    - class: KafkaTopicWriter\n      params: {{ topic: out }}\n")).unwrap();
    let err = spec
        .build(&BuildContext::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "component.processors[1]: KafkaTopicWriter needs a Kafka sink, and the runner provided none");
    let err = spec
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "component.processors[1].params.format: avro output needs a schema registry, and the runner provided none (use format: json)");

    let spec = load(&format!("{HEAD}    - class: CrossmatchProcessor\n      params: {{ catalog: catalogs/none.csv, radius: 2 }}\n")).unwrap();
    let err = spec
        .build(&BuildContext::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("component.processors[0].params.catalog: catalog ")
            && err.contains("none.csv"),
        "{err}"
    );

    let spec = load("component:\n  type: in-broker\n  source: { topic: t }\n  input: { format: confluent }\n  processors:\n    - class: SolarSystemFilter\n      params: { action: include }\n").unwrap();
    let err = spec
        .build(&BuildContext::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "component.input.format: confluent input needs a schema registry, and the runner provided none");
}

#[test]
fn bare_schema_files_resolve_relative_to_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema_dir = testdata_dir().join("ztf/schema/3.3");
    let files: Vec<String> = ["cutout", "candidate", "prv_candidate", "alert"]
        .iter()
        .map(|n| format!("\"{}\"", schema_dir.join(format!("{n}.avsc")).display()))
        .collect();
    let yaml = format!(
        "component:\n  type: in-broker\n  name: bare\n  source: {{ topic: t }}\n  input: {{ format: avro, schema: {{ name: ztf.alert, files: [{}] }} }}\n  processors:\n    - class: SolarSystemFilter\n      params: {{ action: exclude }}\n",
        files.join(", ")
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).unwrap();
    let spec = PipelineSpec::from_file(&file, &ProcessorRegistry::with_builtins()).unwrap();
    assert_eq!(spec.input.format, InputFormat::Bare);
    assert_eq!(spec.name, "bare");
    assert_eq!(spec.dead_letter_topic, "t-dead-letter");
    assert!(spec.input.bare_schema.is_some());
    let err = PipelineSpec::from_file(
        &dir.path().join("missing.yaml"),
        &ProcessorRegistry::with_builtins(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}

fn record<'a>(value: &'a [u8], offset: i64) -> InputRecord<'a> {
    InputRecord {
        topic: "ztf-buffer",
        partition: 3,
        offset,
        key: Some(b"k"),
        value,
        headers: &[("trace", b"t1")],
    }
}

#[test]
fn solar_system_pipeline_end_to_end_with_dead_letters() {
    let yaml = "component:\n  type: in-broker\n  source: { topic: ztf-buffer }\n  processors:\n    - class: SolarSystemFilter\n      params: { action: include }\n    - class: KafkaTopicWriter\n      params: { topic: solar-system }\n";
    let spec = load(yaml).unwrap();
    let sink = Arc::new(MemoryTopicSink::new());
    let registry = Arc::new(MemorySchemaRegistry::new());
    let ctx = BuildContext::default()
        .with_sink(sink.clone())
        .with_registry(registry.clone());
    let mut pipeline = spec.build(&ctx).unwrap();

    let rows = manifest();
    // Independent expectation: the alert ids of rows whose ssnamenr is set.
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.get("ssnamenr").is_empty()) {
        *expected.entry(r.get("alert_id").to_owned()).or_default() += 1;
    }
    assert_eq!(
        expected.values().sum::<usize>(),
        62,
        "48 ZTF + 4 real Rubin + 10 Rubin samples"
    );
    let mut offset = 0;
    // Plain text; a Confluent frame with an id nobody registered; a forged
    // container header.
    let garbage: [&[u8]; 3] = [
        b"not an alert",
        &[0, 0, 0x0f, 0x42, 0x3f, 1, 2],
        b"Obj\x01broken",
    ];
    for (i, r) in rows.iter().enumerate() {
        let bytes = r.bytes();
        match pipeline.handle(&record(&bytes, offset)) {
            RecordOutcome::Processed {
                passed,
                skipped,
                dead_lettered: 0,
            } => assert_eq!(passed + skipped, 1),
            other => panic!("{}: {other:?}", r.file()),
        }
        offset += 1;
        if i % 40 == 0 {
            let g = garbage[(i / 40) % 3];
            assert!(matches!(
                pipeline.handle(&record(g, offset)),
                RecordOutcome::DeadLettered { .. }
            ));
            offset += 1;
        }
    }
    pipeline.flush().unwrap();

    let out = sink.records_for("solar-system");
    let decoder = AlertDecoder::new(InputFormat::Confluent).with_schema_source(registry.clone());
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for rec in &out {
        let c = decoder.decode(&rec.value).unwrap().remove(0);
        assert!(c.is_solar_system());
        assert_eq!(
            rec.key.as_deref(),
            c.object_id().map(|o| o.to_string().into_bytes()).as_deref()
        );
        *got.entry(c.alert_id().to_string()).or_default() += 1;
    }
    assert_eq!(got, expected);
    // One annotated schema registered per distinct input schema, all under the subject.
    let versions = registry.versions("solar-system-value");
    assert!(!versions.is_empty());
    for id in versions {
        assert!(registry
            .schema_text(id)
            .unwrap()
            .contains("starlog_matches"));
    }

    let dead = sink.records_for("ztf-buffer-dead-letter");
    assert_eq!(dead.len(), 4);
    let first = &dead[0];
    assert_eq!(first.value, b"not an alert");
    assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        first.header("trace"),
        Some(&b"t1"[..]),
        "original headers are kept"
    );
    assert_eq!(first.header(TOPIC_HEADER), Some(&b"ztf-buffer"[..]));
    assert_eq!(first.header(PARTITION_HEADER), Some(&b"3"[..]));
    assert_eq!(first.header(OFFSET_HEADER), Some(&b"1"[..]));
    let reason = String::from_utf8(first.header(REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(
        reason.starts_with("ztf-buffer/3@1: message is neither an object container file"),
        "{reason}"
    );
    let reason = String::from_utf8(dead[1].header(REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(
        reason.contains("schema id 999999 is not registered"),
        "{reason}"
    );

    let counters = pipeline.counters();
    assert_eq!(counters.records, 138 + 4);
    assert_eq!(counters.dead_lettered, 4);
    assert_eq!(counters.chain.input, 138);
    assert_eq!(counters.chain.passed, 62);
    assert_eq!(counters.chain.skipped, 138 - 62);
    let steps = pipeline.chain().step_counters();
    assert_eq!(steps[0].0, "SolarSystemFilter");
    assert_eq!(steps[1].1.input, 62);
}

#[test]
fn sink_failures_fail_the_record_and_recover() {
    let yaml = "component:\n  type: in-broker\n  source: { topic: ztf-buffer }\n  processors:\n    - class: KafkaTopicWriter\n      params: { topic: out, format: json, key: alert_id }\n";
    let sink = Arc::new(MemoryTopicSink::new());
    let mut pipeline = load(yaml)
        .unwrap()
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap();
    let rows = manifest();
    let bytes = rows[0].bytes();
    sink.fail_with(Some(SinkError::Unavailable {
        reason: "broker down".into(),
    }));
    match pipeline.handle(&record(&bytes, 0)) {
        RecordOutcome::Failed(e) => assert_eq!(
            e.to_string(),
            "sending to topic out: unavailable: broker down"
        ),
        other => panic!("{other:?}"),
    }
    // The dead-letter path fails the same way rather than dropping the message.
    assert!(matches!(
        pipeline.handle(&record(b"junk", 1)),
        RecordOutcome::Failed(_)
    ));
    sink.fail_with(None);
    assert!(matches!(
        pipeline.handle(&record(&bytes, 0)),
        RecordOutcome::Processed {
            passed: 1,
            skipped: 0,
            dead_lettered: 0
        }
    ));
    let out = sink.records_for("out");
    assert_eq!(out.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&out[0].value).unwrap();
    assert_eq!(
        out[0].key.as_deref(),
        Some(rows[0].get("alert_id").as_bytes())
    );
    assert_eq!(json["starlog_matches"], serde_json::json!([]));
    assert!(
        json.get("cutoutScience").is_none(),
        "cutouts left out of JSON by default"
    );
    assert_eq!(pipeline.counters().failed, 2);
}

#[test]
fn crossmatch_annotations_reach_json_and_avro_outputs() {
    let yaml = "component:\n  type: processing-node\n  source: { topic: ztf-buffer, group: xm }\n  processors:\n    - class: CrossmatchProcessor\n      params: { catalog: catalogs/mangrove_radec.csv, radius: 1800, require_match: true }\n    - class: KafkaTopicWriter\n      params: { topic: json-out, format: json }\n    - class: KafkaTopicWriter\n      params: { topic: avro-out, subject: matched }\n";
    let sink = Arc::new(MemoryTopicSink::new());
    let registry = Arc::new(MemorySchemaRegistry::new());
    let spec = load(yaml).unwrap();
    assert_eq!(spec.name, "xm");
    let mut pipeline = spec
        .build(
            &BuildContext::default()
                .with_sink(sink.clone())
                .with_registry(registry.clone()),
        )
        .unwrap();
    for (i, r) in manifest().iter().enumerate() {
        let bytes = r.bytes();
        let _ = pipeline.handle(&record(&bytes, i64::try_from(i).unwrap()));
    }
    let json = sink.records_for("json-out");
    let avro = sink.records_for("avro-out");
    assert!(
        !json.is_empty(),
        "some alerts lie within 0.5 degree of a Mangrove galaxy"
    );
    assert_eq!(json.len(), avro.len());
    assert_eq!(
        u64::try_from(json.len()).unwrap(),
        pipeline.counters().chain.passed
    );
    let decoder = AlertDecoder::new(InputFormat::Confluent).with_schema_source(registry.clone());
    for (j, a) in json.iter().zip(&avro) {
        let j: serde_json::Value = serde_json::from_slice(&j.value).unwrap();
        let matches = j["starlog_matches"].as_array().unwrap();
        assert!(!matches.is_empty());
        // The Avro record carries the same matches in its starlog_matches field.
        let c = decoder.decode(&a.value).unwrap().remove(0);
        let field = starlog_processors::avro_value::field(c.value(), "starlog_matches").unwrap();
        let arr = starlog_processors::avro_value::as_array(field).unwrap();
        assert_eq!(arr.len(), matches.len());
        for (m, v) in matches.iter().zip(arr) {
            let src = starlog_processors::avro_value::field(v, "sourceid")
                .and_then(starlog_processors::avro_value::as_str)
                .unwrap();
            assert_eq!(m["sourceid"].as_str().unwrap(), src);
            let d = starlog_processors::avro_value::field(v, "distance")
                .and_then(starlog_processors::avro_value::as_f64)
                .unwrap();
            // JSON text round trip: equal to the last bits of a double.
            assert!(
                (m["distance"].as_f64().unwrap() - d).abs() <= 1e-15,
                "{m} vs {d}"
            );
            assert_eq!(m["catalogid"], "mangrove_radec");
            assert!(d <= 0.5);
        }
    }
    assert!(!registry.versions("matched").is_empty());
}

#[derive(Debug)]
struct EveryOther(bool);
impl CandidateProcessor for EveryOther {
    fn process(&mut self, _c: &mut Candidate) -> Response {
        self.0 = !self.0;
        Response::pass_if(self.0)
    }
}
impl ProcessorSpec for EveryOther {
    fn build(
        &self,
        _ctx: &BuildContext,
        _path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        Ok(Box::new(EveryOther(false)))
    }
}

#[test]
fn other_crates_can_register_classes() {
    let mut registry = ProcessorRegistry::with_builtins();
    registry.register(
        "EveryOther",
        |_p: &mut starlog_processors::config::Params<'_>| {
            Ok(Box::new(EveryOther(false)) as Box<dyn ProcessorSpec>)
        },
    );
    let yaml = "type: in-broker\nsource: { topic: t }\nprocessors:\n  - class: EveryOther\n    name: half\n";
    let spec = PipelineSpec::from_yaml_str(yaml, "inline", Path::new("."), &registry).unwrap();
    assert_eq!(spec.chain.classes(), vec!["EveryOther"]);
    let mut p = spec.build(&BuildContext::default()).unwrap();
    let rows = manifest();
    for (i, r) in rows.iter().take(10).enumerate() {
        let b = r.bytes();
        let _ = p.handle(&record(&b, i64::try_from(i).unwrap()));
    }
    assert_eq!(p.counters().chain.passed, 5);
    assert_eq!(p.chain().step_counters()[0].0, "half");
    // Without the registration the class is unknown, with the path.
    let err = PipelineSpec::from_yaml_str(
        yaml,
        "inline",
        Path::new("."),
        &ProcessorRegistry::with_builtins(),
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("processors[0].class"));
}

/// Refuses every second candidate for good, as a writer refuses a row it
/// can never store.
#[derive(Debug)]
struct RefuseEveryOther(bool);
impl CandidateProcessor for RefuseEveryOther {
    fn process(&mut self, c: &mut Candidate) -> Response {
        self.0 = !self.0;
        if self.0 {
            Response::Pass
        } else {
            Response::DeadLetter(format!("row for {} refused", c.alert_id()))
        }
    }
}
impl ProcessorSpec for RefuseEveryOther {
    fn build(
        &self,
        _ctx: &BuildContext,
        _path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        Ok(Box::new(RefuseEveryOther(false)))
    }
}

#[test]
fn a_step_dead_letters_a_candidate_and_the_chain_goes_on() {
    let mut registry = ProcessorRegistry::with_builtins();
    registry.register(
        "RefuseEveryOther",
        |_p: &mut starlog_processors::config::Params<'_>| {
            Ok(Box::new(RefuseEveryOther(false)) as Box<dyn ProcessorSpec>)
        },
    );
    let yaml = "type: in-broker\nsource: { topic: ztf-buffer }\ndead_letter: { topic: refused }\nprocessors:\n  - class: RefuseEveryOther\n  - class: KafkaTopicWriter\n    params: { topic: out, format: json, key: alert_id }\n";
    let spec = PipelineSpec::from_yaml_str(yaml, "inline", Path::new("."), &registry).unwrap();
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = spec
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap();
    let rows = manifest();
    let mut refused = Vec::new();
    for (i, r) in rows.iter().take(6).enumerate() {
        let b = r.bytes();
        let outcome = p.handle(&record(&b, i64::try_from(i).unwrap()));
        let expect_refused = i % 2 == 1;
        match outcome {
            RecordOutcome::Processed {
                passed,
                skipped: 0,
                dead_lettered,
            } => {
                assert_eq!(passed, usize::from(!expect_refused), "record {i}");
                assert_eq!(dead_lettered, usize::from(expect_refused), "record {i}");
            }
            other => panic!("record {i}: {other:?}"),
        }
        if expect_refused {
            refused.push((i, r.get("alert_id").to_owned()));
        }
    }
    // The refused records went to the dead-letter topic unchanged, with the
    // step's reason naming the alert; the others reached the writer.
    let dead = sink.records_for("refused");
    assert_eq!(dead.len(), refused.len());
    for (d, (i, alert_id)) in dead.iter().zip(&refused) {
        assert_eq!(d.value, rows[*i].bytes());
        let reason = String::from_utf8(d.header(REASON_HEADER).unwrap().to_vec()).unwrap();
        assert_eq!(
            reason,
            format!("ztf-buffer/3@{i}: alert {alert_id}: row for {alert_id} refused")
        );
    }
    assert_eq!(sink.records_for("out").len(), 3);
    let counters = p.counters();
    assert_eq!(counters.dead_lettered, 3);
    assert_eq!(counters.chain.dead_lettered, 3);
    assert_eq!(counters.chain.passed, 3);
}

/// A registry that refuses every new schema (as an incompatible subject
/// does), or cannot be reached.
#[derive(Debug)]
struct RefusingRegistry {
    reachable: bool,
}
impl SchemaSource for RefusingRegistry {
    fn schema_text(
        &self,
        id: u32,
    ) -> Result<String, starlog_processors::decode::SchemaSourceError> {
        Err(starlog_processors::decode::SchemaSourceError::NotFound { id })
    }
}
impl starlog_processors::decode::SchemaRegistry for RefusingRegistry {
    fn register(
        &self,
        subject: &str,
        _schema_text: &str,
    ) -> Result<u32, starlog_processors::decode::SchemaSourceError> {
        use starlog_processors::decode::SchemaSourceError;
        Err(if self.reachable {
            SchemaSourceError::Refused {
                subject: subject.to_owned(),
                reason: "incompatible with an earlier schema".to_owned(),
            }
        } else {
            SchemaSourceError::Unavailable {
                reason: "connection refused".to_owned(),
            }
        })
    }
}

#[test]
fn an_output_schema_the_registry_refuses_dead_letters_and_an_unreachable_one_retries() {
    let yaml = "component:\n  type: in-broker\n  source: { topic: ztf-buffer }\n  dead_letter: { topic: refused }\n  processors:\n    - class: KafkaTopicWriter\n      params: { topic: out }\n";
    let rows = manifest();
    let bytes = rows[0].bytes();
    // Refused for good: the record goes to the dead-letter topic with the reason.
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = load(yaml)
        .unwrap()
        .build(
            &BuildContext::default()
                .with_sink(sink.clone())
                .with_registry(Arc::new(RefusingRegistry { reachable: true })),
        )
        .unwrap();
    match p.handle(&record(&bytes, 0)) {
        RecordOutcome::Processed {
            passed: 0,
            skipped: 0,
            dead_lettered: 1,
        } => {}
        other => panic!("{other:?}"),
    }
    let dead = sink.records_for("refused");
    assert_eq!(dead.len(), 1);
    let reason = String::from_utf8(dead[0].header(REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(
        reason.contains("the registry refused the schema for subject out-value: incompatible"),
        "{reason}"
    );
    assert!(sink.records_for("out").is_empty());
    // Unreachable: the record fails and is retried, nothing dead-lettered.
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = load(yaml)
        .unwrap()
        .build(
            &BuildContext::default()
                .with_sink(sink.clone())
                .with_registry(Arc::new(RefusingRegistry { reachable: false })),
        )
        .unwrap();
    assert!(matches!(
        p.handle(&record(&bytes, 0)),
        RecordOutcome::Failed(ProcessError::Registry { .. })
    ));
    assert!(sink.records_for("refused").is_empty());
}
