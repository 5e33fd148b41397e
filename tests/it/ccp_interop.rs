//! The CCP codec (`src/ilp/ccp.rs`) against the reference one (`ilp-protocol-ccp`, pinned in
//! `tests/interop/package-lock.json`), byte for byte in both directions, on generated corpora
//! (`tests/interop/ccp_corpus.js`). Like every interop test, it fails, naming the install
//! command, when Node or the packages are missing.

use m2m_connector::ilp::ccp::{Mode, Route, RouteControlRequest, RouteProp, RouteUpdateRequest, RoutingTableId};
use serde_json::{json, Value};

use crate::interop::{expect_script_success, node_script, require_js_stack, Rng};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// Our decode of `bytes` in the corpus's JSON shape (ilp-protocol-ccp's field names).
fn decoded_json(kind: &str, bytes: &[u8]) -> Result<(Value, Vec<u8>), String> {
    match kind {
        "control" => {
            let control = RouteControlRequest::parse(bytes).map_err(|error| error.to_string())?;
            let value = json!({
                "mode": match control.mode { Mode::Idle => 0, Mode::Sync => 1 },
                "lastKnownRoutingTableId": control.last_known_routing_table_id.to_string(),
                "lastKnownEpoch": control.last_known_epoch,
                "features": control.features,
            });
            Ok((value, control.encode()))
        }
        "update" => {
            let update = RouteUpdateRequest::parse(bytes).map_err(|error| error.to_string())?;
            let routes: Vec<Value> = update
                .new_routes
                .iter()
                .map(|route| {
                    let props: Vec<Value> = route
                        .props
                        .iter()
                        .map(|prop| {
                            let value = if prop.utf8 { Value::from(String::from_utf8_lossy(&prop.value).into_owned()) } else { Value::from(hex(&prop.value)) };
                            json!({
                                "isOptional": prop.optional, "isTransitive": prop.transitive, "isPartial": prop.partial,
                                "isUtf8": prop.utf8, "id": prop.id, "value": value,
                            })
                        })
                        .collect();
                    json!({ "prefix": route.prefix, "path": route.path, "auth": hex(&route.auth), "props": props })
                })
                .collect();
            let value = json!({
                "routingTableId": update.routing_table_id.to_string(),
                "currentEpochIndex": update.current_epoch_index,
                "fromEpochIndex": update.from_epoch_index,
                "toEpochIndex": update.to_epoch_index,
                "holdDownTime": update.hold_down_time_ms,
                "speaker": update.speaker,
                "newRoutes": routes,
                "withdrawnRoutes": update.withdrawn_routes,
            });
            Ok((value, update.encode()))
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn interop_ccp_js_corpus_decodes_and_reencodes_with_our_codec() {
    require_js_stack();
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("ccp-js-corpus.json");
    let output = node_script("ccp_corpus.js", &["generate", path.to_str().expect("UTF-8 path"), "--seed", "20261206", "--count", "300"]);
    expect_script_success(&output, "ccp_corpus.js generate");
    let corpus: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).expect("the corpus")).expect("corpus JSON");
    assert_eq!(corpus.len(), 300);
    let mut failures = Vec::new();
    for item in &corpus {
        let (id, kind, bytes) = (item["id"].as_str().unwrap_or("?"), item["kind"].as_str().unwrap_or("?"), unhex(item["hex"].as_str().unwrap_or("")));
        match decoded_json(kind, &bytes) {
            Err(error) => failures.push(format!("{id}: does not decode: {error}")),
            Ok((decoded, encoded)) => {
                if decoded != item["decoded"] {
                    failures.push(format!("{id}: ours {decoded} reference {}", item["decoded"]));
                }
                if encoded != bytes {
                    failures.push(format!("{id}: re-encodes to {}", hex(&encoded)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of 300 disagree:\n{}", failures.len(), failures[..failures.len().min(20)].join("\n"));
}

fn random_text(rng: &mut Rng, ascii: bool, max: usize) -> String {
    const ASCII: &[&str] = &["a", "z", "0", ".", "-", "_", "~", "g", "test"];
    const UNICODE: &[&str] = &["a", " ", "\u{e9}", "\u{20ac}", "\u{4e2d}", "\u{1F4B8}"];
    (0..rng.range(0, max)).map(|_| *rng.pick(if ascii { ASCII } else { UNICODE })).collect()
}

fn random_u32(rng: &mut Rng) -> u32 {
    let (small, any) = (rng.next() as u32 % 1000, rng.next() as u32);
    *rng.pick(&[0, 1, u32::MAX, small, any])
}

fn random_table_id(rng: &mut Rng) -> RoutingTableId {
    RoutingTableId(rng.bytes(16).try_into().expect("16 bytes"))
}

/// Our corpus: random messages encoded by our codec, described in the corpus's JSON shape.
fn our_corpus(seed: u64, size: usize) -> Vec<Value> {
    let mut rng = Rng(seed);
    (0..size)
        .map(|index| {
            let (kind, bytes) = if rng.chance(30) {
                let control = RouteControlRequest {
                    mode: if rng.chance(50) { Mode::Sync } else { Mode::Idle },
                    last_known_routing_table_id: random_table_id(&mut rng),
                    last_known_epoch: random_u32(&mut rng),
                    features: (0..rng.range(0, 3)).map(|_| random_text(&mut rng, false, 8)).collect(),
                };
                ("control", control.encode())
            } else {
                let new_routes = (0..*rng.pick(&[0, 1, 2, 5]))
                    .map(|_| Route {
                        prefix: random_text(&mut rng, true, 20),
                        path: (0..rng.range(0, 3)).map(|_| random_text(&mut rng, true, 12)).collect(),
                        auth: rng.bytes(32).try_into().expect("32 bytes"),
                        props: (0..*rng.pick(&[0, 0, 1, 3]))
                            .map(|_| {
                                let optional = rng.chance(50);
                                let transitive = !optional || rng.chance(50);
                                let partial = optional && transitive && rng.chance(50);
                                let utf8 = rng.chance(50);
                                let value = if utf8 { random_text(&mut rng, false, 10).into_bytes() } else {
                                    let size = rng.range(0, 12);
                                    rng.bytes(size)
                                };
                                RouteProp { optional, transitive, partial, utf8, id: rng.next() as u16, value }
                            })
                            .collect(),
                    })
                    .collect();
                let update = RouteUpdateRequest {
                    routing_table_id: random_table_id(&mut rng),
                    current_epoch_index: random_u32(&mut rng),
                    from_epoch_index: random_u32(&mut rng),
                    to_epoch_index: random_u32(&mut rng),
                    hold_down_time_ms: random_u32(&mut rng),
                    speaker: random_text(&mut rng, true, 16),
                    new_routes,
                    withdrawn_routes: (0..*rng.pick(&[0, 0, 1, 3])).map(|_| random_text(&mut rng, true, 20)).collect(),
                };
                ("update", update.encode())
            };
            let (decoded, _) = decoded_json(kind, &bytes).expect("our codec reads what it wrote");
            json!({ "id": format!("RS-CCP-{index:04}"), "kind": kind, "hex": hex(&bytes), "decoded": decoded })
        })
        .collect()
}

#[test]
fn interop_ccp_our_corpus_verifies_with_the_reference_codec() {
    require_js_stack();
    let corpus = our_corpus(0x6363_705f_636f_7270, 300);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("ccp-rust-corpus.json");
    std::fs::write(&path, serde_json::to_vec(&corpus).expect("corpus JSON")).expect("writing the corpus");
    let output = node_script("ccp_corpus.js", &["verify", path.to_str().expect("UTF-8 path")]);
    expect_script_success(&output, "ccp_corpus.js verify");
}
