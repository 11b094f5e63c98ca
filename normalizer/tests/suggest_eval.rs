//! Measures `gateway mappings suggest` ([`normalizer::suggest`]) on held-out samples of four
//! made-up departmental systems whose field styles the dictionary was not written from
//! (`tests/suggest_heldout/*`, each with its hand-written truth). Prints precision and recall over
//! source fields and asserts a floor slightly below the measured figures:
//!
//!   cargo test -p normalizer --test suggest_eval -- --nocapture

use normalizer::suggest::{suggest, Status, SuggestOptions};
use normalizer::xml_tree::{find_records, parse_xml, XmlLimits};
use normalizer::CaseType;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct System {
    name: String,
    case_type: CaseType,
    records: Vec<Value>,
    truth: BTreeMap<String, String>,
    none: Vec<String>,
}

fn load(dir: &Path) -> System {
    let truth: toml::Table = std::fs::read_to_string(dir.join("truth.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let file = dir.join(truth["file"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let records: Vec<Value> = match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Some("xml") => {
            let tree = parse_xml(&bytes, &XmlLimits::default()).unwrap();
            find_records(&tree, truth["xml_records"].as_str().unwrap())
                .into_iter()
                .cloned()
                .collect()
        }
        Some("csv") => {
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            let headers = reader.headers().unwrap().clone();
            reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    let mut o = Map::new();
                    for (h, v) in headers.iter().zip(r.iter()) {
                        o.insert(h.to_string(), Value::String(v.to_string()));
                    }
                    Value::Object(o)
                })
                .collect()
        }
        other => panic!("unknown sample format {other:?}"),
    };
    let case_type = match truth["case_type"].as_str().unwrap() {
        "penalty" => CaseType::Penalty,
        "inspection" => CaseType::Inspection,
        _ => CaseType::Coercion,
    };
    System {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        case_type,
        records,
        truth: truth["truth"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        none: truth["none"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
    }
}

fn systems() -> Vec<System> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/suggest_heldout");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| load(d)).collect()
}

/// Counts of one run.
#[derive(Default, Clone, Copy)]
struct Score {
    proposed: usize,
    correct: usize,
    truth: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        self.correct as f64 / self.proposed.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.correct as f64 / self.truth.max(1) as f64
    }
    fn add(&mut self, o: Score) {
        self.proposed += o.proposed;
        self.correct += o.correct;
        self.truth += o.truth;
    }
}

/// Score the active proposals (and, second, active plus commented-out ones) of one system.
fn score(system: &System, case_type: Option<CaseType>) -> (Score, Score, Vec<String>) {
    let options = SuggestOptions {
        id: system.name.clone(),
        case_type,
        ..SuggestOptions::default()
    };
    let s = suggest(&system.records, &options).unwrap();
    let mut active = Score {
        truth: system.truth.len(),
        ..Score::default()
    };
    let mut any = active;
    let mut wrong = Vec::new();
    for p in &s.proposals {
        let right = system.truth.get(&p.source) == Some(&p.target);
        let is_active = p.status == Status::Active;
        if is_active {
            active.proposed += 1;
            active.correct += usize::from(right);
        }
        any.proposed += 1;
        any.correct += usize::from(right);
        if !right {
            let known = system.truth.contains_key(&p.source) || system.none.contains(&p.source);
            wrong.push(format!(
                "{} → {} ({:?}, {:.2}; truth {}){}",
                p.source,
                p.target,
                p.status,
                p.confidence,
                system.truth.get(&p.source).map_or("none", String::as_str),
                if known { "" } else { " [field not in truth]" }
            ));
        }
    }
    for (field, target) in &system.truth {
        if !s.proposals.iter().any(|p| &p.source == field && &p.target == target) {
            wrong.push(format!("missed {field} → {target}"));
        }
    }
    (active, any, wrong)
}

#[test]
fn proposals_on_held_out_systems_reach_the_measured_precision_and_recall() {
    let systems = systems();
    assert!(systems.len() >= 4);
    let mut total = Score::default();
    let mut total_any = Score::default();
    println!("system | fields | active proposed | right | precision | recall | incl. commented: precision / recall");
    for s in &systems {
        let (active, any, wrong) = score(s, Some(s.case_type));
        println!(
            "{} | {} | {} | {} | {:.2} | {:.2} | {:.2} / {:.2}",
            s.name,
            active.truth,
            active.proposed,
            active.correct,
            active.precision(),
            active.recall(),
            any.precision(),
            any.recall()
        );
        for w in wrong {
            println!("    {w}");
        }
        total.add(active);
        total_any.add(any);
    }
    println!(
        "TOTAL | {} | {} | {} | {:.2} | {:.2} | {:.2} / {:.2}",
        total.truth,
        total.proposed,
        total.correct,
        total.precision(),
        total.recall(),
        total_any.precision(),
        total_any.recall()
    );
    // Floors slightly below the figures measured (docs/mapping-suggest.md).
    assert!(
        total.precision() >= PRECISION_FLOOR,
        "precision {:.3}",
        total.precision()
    );
    assert!(total.recall() >= RECALL_FLOOR, "recall {:.3}", total.recall());
}

const PRECISION_FLOOR: f64 = 0.95;
const RECALL_FLOOR: f64 = 0.78;

#[test]
fn the_case_type_is_guessed_from_the_field_names_of_held_out_systems() {
    let mut right = 0;
    let systems = systems();
    for s in &systems {
        let suggestion = suggest(&s.records, &SuggestOptions::default()).unwrap();
        println!(
            "{}: guessed {:?}, truth {:?}",
            s.name, suggestion.case_type, s.case_type
        );
        right += usize::from(suggestion.case_type == s.case_type);
    }
    assert!(right >= GUESS_FLOOR, "{right} of {} case types guessed", systems.len());
}

const GUESS_FLOOR: usize = 4;
