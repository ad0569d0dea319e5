//! `GET /openapi.json` against the real router. The document lists exactly the contract's
//! routes, each really mounted (and nothing else is), each with the contract's statuses; every
//! error response is the `Error` schema; and a real answer of every documented JSON response
//! validates against its schema. So a route added without its documentation, a documented
//! route that is not served, a status a handler answers but the document omits, or a response
//! shape that differs from its schema fails here.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use http::{Method, Request};
use serde_json::{json, Value};

use crate::common::{Harness, Reply, TARGET};

/// Statuses the router's layers give every route: a 400 for an encoded NUL in the URI and a
/// JSON 500 for a panic.
const LAYERS: &[u16] = &[400, 500];

/// The routes of the contract (API.md, and the route table of the crate docs) with the
/// statuses each must document besides [`LAYERS`]. Every route touching the store also
/// answers 503.
const CONTRACT: &[(&str, &str, &[u16])] = &[
    ("GET", "/schedule", SCHEDULE),
    ("HEAD", "/schedule", SCHEDULE),
    ("POST", "/schedule", SCHEDULE),
    ("PUT", "/schedule", SCHEDULE),
    ("PATCH", "/schedule", SCHEDULE),
    ("DELETE", "/schedule", SCHEDULE),
    ("DELETE", "/cancel", CANCEL),
    ("GET", "/cancel", CANCEL),
    ("POST", "/cancel", CANCEL),
    ("POST", "/declare", &[200, 401, 402, 413, 503]),
    ("POST", "/bulk", &[200, 401, 402, 413, 503]),
    ("GET", "/cron/next", &[200, 401, 503]),
    ("POST", "/auth/signup", &[200, 403, 409, 413, 503]),
    ("POST", "/auth/login", &[200, 401, 413, 503]),
    ("POST", "/auth/logout", &[200, 403, 503]),
    ("GET", "/auth/me", &[200, 401, 503]),
    ("GET", "/projects", &[200, 401, 503]),
    ("POST", "/projects", &[200, 401, 403, 409, 413, 503]),
    ("GET", "/keys", &[200, 401, 404, 503]),
    ("POST", "/keys", &[200, 401, 403, 404, 413, 503]),
    ("DELETE", "/keys/{id}", &[200, 401, 403, 404, 503]),
    ("GET", "/jobs", &[200, 401, 404, 503]),
    ("GET", "/jobs/{id}", &[200, 401, 404, 503]),
    ("GET", "/jobs/{id}/executions", &[200, 401, 404, 503]),
    (
        "POST",
        "/jobs/{id}/executions",
        &[200, 401, 403, 404, 413, 503],
    ),
    ("GET", "/executions", &[200, 401, 404, 503]),
    ("GET", "/rate-limits", &[200, 401, 404, 503]),
    ("POST", "/rate-limits", &[200, 401, 403, 404, 413, 503]),
    ("PUT", "/rate-limits/{id}", &[200, 401, 403, 404, 413, 503]),
    ("DELETE", "/rate-limits/{id}", &[200, 401, 403, 404, 503]),
    ("GET", "/health", &[200, 503]),
    ("GET", "/openapi.json", &[200]),
];
const SCHEDULE: &[u16] = &[200, 401, 402, 404, 410, 413, 503];
const CANCEL: &[u16] = &[204, 401, 404, 410, 503];

/// Every method a router may be asked for.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// The document as the router serves it.
async fn served_document(h: &Harness) -> Value {
    let reply = h.send(get("/openapi.json")).await;
    reply.ok_json()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Every (METHOD, path) the document lists, with its operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                out.insert((method.to_uppercase(), path.clone()), op.clone());
            }
        }
    }
    out
}

fn documented_statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("status {s:?} is a number"))
        })
        .collect()
}

/// `/jobs/{id}` → `/jobs/x`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('x');
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a reply is the router's fallback for an unknown route (not a handler's 404).
fn is_no_route(reply: &Reply) -> bool {
    reply.status == 404
        && reply
            .header("ttr-error")
            .is_some_and(|m| m.starts_with("no route for"))
}

#[tokio::test]
async fn the_document_is_openapi_3_1_served_as_json_without_credentials() {
    let h = Harness::new().await;
    let reply = h.send(get("/openapi.json")).await;
    let doc = reply.ok_json();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "TimeTriggers API");
    // The same document as the library function builds.
    let built: Value =
        serde_json::from_str(&timetriggers_http::openapi().to_json().unwrap()).unwrap();
    assert_eq!(doc, built);
}

#[tokio::test]
async fn the_document_lists_exactly_the_contract_routes_with_their_statuses() {
    let h = Harness::new().await;
    let doc = served_document(&h).await;
    let ops = operations(&doc);
    let documented: BTreeSet<(String, String)> = ops.keys().cloned().collect();
    let contract: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&contract).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented (and so mounted) but not in the contract table of this test"
    );
    assert_eq!(
        contract.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in the contract but not documented (and so not mounted)"
    );
    for (method, path, statuses) in CONTRACT {
        let op = &ops[&((*method).to_owned(), (*path).to_owned())];
        let got = documented_statuses(op);
        for status in statuses.iter().chain(LAYERS) {
            assert!(
                got.contains(status),
                "{method} {path} does not document {status} (it documents {got:?})"
            );
        }
    }
}

#[tokio::test]
async fn every_response_has_its_schema_and_every_error_is_the_error_schema() {
    let h = Harness::new().await;
    let doc = served_document(&h).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();

    // The error body: {"_tag": <one of the tags>, "message": string}, both required.
    let error = &schemas["Error"];
    assert_eq!(error["type"], "object");
    assert_eq!(error["required"], json!(["_tag", "message"]));
    assert_eq!(error["properties"]["message"]["type"], "string");
    let tag = resolve(&doc, &error["properties"]["_tag"]);
    let tags: BTreeSet<&str> = tag["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let contract_tags = [
        "BadRequest",
        "Unauthorized",
        "QuotaExceeded",
        "Forbidden",
        "NotFound",
        "MethodNotAllowed",
        "Conflict",
        "Gone",
        "PayloadTooLarge",
        "TooManyRequests",
        "InternalError",
        "Unavailable",
    ];
    assert_eq!(tags, contract_tags.into_iter().collect());

    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "operation id {id} is not unique");
        for scheme in op["security"].as_array().into_iter().flatten() {
            for name in scheme.as_object().unwrap().keys() {
                assert!(
                    doc["components"]["securitySchemes"][name].is_object(),
                    "{method} {path}: unknown security scheme {name}"
                );
            }
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            let status: u16 = status.parse().unwrap();
            let at = format!("{method} {path} {status}");
            assert!(response["description"].is_string(), "{at}: no description");
            if method == "HEAD" {
                assert!(response.get("content").is_none(), "{at}: a HEAD body");
                continue;
            }
            let json_schema = &response["content"]["application/json"]["schema"];
            if status >= 400 {
                assert_eq!(
                    json_schema,
                    &json!({"$ref": "#/components/schemas/Error"}),
                    "{at}: errors are the Error schema"
                );
                assert!(
                    response["headers"]["ttr-error"].is_object(),
                    "{at}: errors carry ttr-error"
                );
            } else if status != 204 {
                assert!(
                    json_schema.is_object(),
                    "{at}: a JSON answer without schema"
                );
            }
        }
    }

    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_documented_operation_is_mounted_and_every_other_method_is_405() {
    let h = Harness::new().await;
    let doc = served_document(&h).await;
    let ops = operations(&doc);
    let paths: BTreeSet<&String> = ops.keys().map(|(_, p)| p).collect();

    // The probe tells the fallback from a handler's 404.
    let reply = h.send(get("/no/such/route")).await;
    assert!(is_no_route(&reply));

    for path in paths {
        let uri = concrete(path);
        for method in METHODS {
            let key = ((*method).to_owned(), path.clone());
            let request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let reply = h.send(request).await;
            let at = format!("{method} {uri}");
            assert!(!is_no_route(&reply), "{at}: documented path, no route");
            match ops.get(&key) {
                Some(op) => {
                    // Mounted, and what it answers without credentials or body is documented.
                    assert_ne!(reply.status, 405, "{at}: documented, not mounted");
                    let status = reply.status.as_u16();
                    assert!(
                        documented_statuses(op).contains(&status),
                        "{at}: answered {status}, which its operation does not document"
                    );
                }
                // axum answers HEAD with the GET handler.
                None if *method == "HEAD"
                    && ops.contains_key(&("GET".to_owned(), path.clone())) => {}
                // A HEAD answer has no body to check.
                None if *method == "HEAD" => assert_eq!(reply.status, 405, "{at}"),
                None => {
                    reply.error(405, "MethodNotAllowed");
                }
            }
        }
    }
}

/// The schema behind a `$ref` (or the schema itself).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Whether `value` matches `schema`: the subset of JSON Schema the document uses (`$ref`,
/// `oneOf`, `type`, `enum`, `required`, `properties`, `additionalProperties`, `items`,
/// `minimum`, `maximum`, `format: date-time`).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|s| validate(doc, s, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {value} matches {matching} of {options:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_ok = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let (Some(n), Some(min)) = (value.as_f64(), schema["minimum"].as_f64()) {
        if n < min {
            return Err(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(n), Some(max)) = (value.as_f64(), schema["maximum"].as_f64()) {
        if n > max {
            return Err(format!("{at}: {n} > {max}"));
        }
    }
    if let (Some(s), Some("date-time")) = (value.as_str(), schema["format"].as_str()) {
        if !is_utc_millis(s) {
            return Err(format!("{at}: {s:?} is not RFC 3339 UTC with milliseconds"));
        }
    }
    if let Value::Object(object) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                return Err(format!("{at}: no {name} in {value}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(s) => validate(doc, s, field, &at)?,
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{at}: not in the schema")),
                    s @ Value::Object(_) => validate(doc, s, field, &at)?,
                    // Response schemas list every field the body has.
                    _ if properties.is_some() => return Err(format!("{at}: not in the schema")),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            validate(doc, item, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// `2026-11-22T09:30:00.000Z`.
fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Calls the router and checks each JSON request and response body against the document.
struct Checker {
    h: Harness,
    doc: Value,
    /// The operations whose 2xx JSON answer was validated.
    seen: BTreeSet<(String, String)>,
}

impl Checker {
    async fn new() -> Self {
        Self::with(Harness::new().await).await
    }

    async fn with(h: Harness) -> Self {
        let doc = served_document(&h).await;
        Checker {
            h,
            doc,
            seen: BTreeSet::new(),
        }
    }

    /// `method uri` (documented as `path`) with these headers and JSON body; asserts a 2xx
    /// whose JSON body (if any) matches the documented schema, and returns the reply.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let ops = operations(&self.doc);
        let op = &ops[&(method.to_owned(), path.to_owned())];
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let body = match body {
            None => Body::empty(),
            Some(body) => {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                assert!(
                    schema.is_object(),
                    "{method} {path}: no JSON request schema"
                );
                if let Err(e) = validate(&self.doc, schema, &body, "request") {
                    panic!("{method} {path}: {e}");
                }
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
        };
        let reply = self.h.send(request.body(body).unwrap()).await;
        let status = reply.status.as_u16();
        assert!(
            reply.status.is_success(),
            "{method} {uri}: {status} {:?}",
            reply.body
        );
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path}: {status} is not documented"
        );
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_object() {
            assert_eq!(reply.header("content-type"), Some("application/json"));
            if let Err(e) = validate(&self.doc, schema, &reply.json(), "response") {
                panic!("{method} {path}: {e}");
            }
            self.seen.insert((method.to_owned(), path.to_owned()));
        } else {
            assert!(
                reply.body.is_empty(),
                "{method} {path}: an undocumented body"
            );
        }
        reply
    }
}

#[tokio::test]
async fn real_answers_match_their_schemas_on_every_route() {
    let mut c = Checker::new().await;
    let t = c.h.tenant("acme").await;
    let k = t.key.as_str();
    let key = [("ttr-api-key", k)];

    c.call("GET", "/health", "/health", &[], None).await;
    c.call("GET", "/openapi.json", "/openapi.json", &[], None)
        .await;

    // Trigger API.
    let scheduled = c
        .call(
            "POST",
            "/schedule",
            "/schedule",
            &[
                ("ttr-api-key", k),
                ("ttr-url", TARGET),
                ("ttr-custom-key", "replayed"),
                ("ttr-tags", "a,b"),
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
            ],
            None,
        )
        .await
        .json();
    let job_id = scheduled["triggerId"].as_str().unwrap().to_owned();
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        c.call(
            method,
            "/schedule",
            "/schedule",
            &[("ttr-api-key", k), ("ttr-url", TARGET)],
            None,
        )
        .await;
    }
    c.call(
        "POST",
        "/schedule",
        "/schedule",
        &[
            ("ttr-api-key", k),
            ("ttr-url", TARGET),
            ("ttr-scheduled-at", "*/5 * * * *"),
        ],
        None,
    )
    .await;
    c.call(
        "DELETE",
        "/cancel",
        "/cancel",
        &[("ttr-api-key", k), ("ttr-trigger-id", &job_id)],
        None,
    )
    .await;
    let declaration = json!({
        "customKey": "declared",
        "url": TARGET,
        "method": "POST",
        "headers": {"x-one": "1"},
        "body": {"_tag": "text", "value": "hi"},
        "tags": ["t"],
        "scheduledAt": "2026-12-01T00:00:00Z"
    });
    c.call(
        "POST",
        "/declare",
        "/declare",
        &key,
        Some(json!([declaration])),
    )
    .await;
    c.call(
        "POST",
        "/declare",
        "/declare",
        &key,
        Some(json!({"jobs": [declaration], "runMissed": false})),
    )
    .await;
    c.call(
        "POST",
        "/bulk",
        "/bulk",
        &key,
        Some(json!({
            "runMissed": true,
            "cancels": ["declared", {"tag": "t"}, {"id": "nope"}, {"customKey": "nope"}],
            "upserts": [{"customKey": "bulk", "url": TARGET, "scheduledAt": "@daily"}]
        })),
    )
    .await;
    c.call(
        "GET",
        "/cron/next",
        "/cron/next?expression=30%209%20*%20*%201-5&timezone=Europe/Paris&count=3",
        &key,
        None,
    )
    .await;

    // Jobs and executions (by API key).
    c.call("GET", "/jobs", "/jobs?limit=100", &key, None).await;
    let job_uri = format!("/jobs/{job_id}");
    c.call("GET", "/jobs/{id}", &job_uri, &key, None).await;
    let executions_uri = format!("/jobs/{job_id}/executions");
    c.call(
        "POST",
        "/jobs/{id}/executions",
        &executions_uri,
        &key,
        Some(json!({"triggeredBy": "retry"})),
    )
    .await;
    c.call("GET", "/jobs/{id}/executions", &executions_uri, &key, None)
        .await;
    c.call("GET", "/executions", "/executions", &key, None)
        .await;

    // Keys and rate limits (by API key).
    let created = c
        .call(
            "POST",
            "/keys",
            "/keys",
            &key,
            Some(json!({"name": "second"})),
        )
        .await
        .json();
    c.call("GET", "/keys", "/keys", &key, None).await;
    let key_uri = format!("/keys/{}", created["id"].as_str().unwrap());
    c.call("DELETE", "/keys/{id}", &key_uri, &key, None).await;
    let rule = c
        .call(
            "POST",
            "/rate-limits",
            "/rate-limits",
            &key,
            Some(json!({"tag": "partner", "maxPerSecond": 2, "maxPerDay": 1000})),
        )
        .await
        .json();
    c.call("GET", "/rate-limits", "/rate-limits", &key, None)
        .await;
    let rule_uri = format!("/rate-limits/{}", rule["id"].as_str().unwrap());
    c.call(
        "PUT",
        "/rate-limits/{id}",
        &rule_uri,
        &key,
        Some(json!({"maxPerDay": null, "maxPerHour": 50})),
    )
    .await;
    c.call("DELETE", "/rate-limits/{id}", &rule_uri, &key, None)
        .await;

    // Accounts (by session cookie).
    let credentials = json!({"email": "ada@example.com", "password": "correct horse"});
    let signed_up = c
        .call(
            "POST",
            "/auth/signup",
            "/auth/signup",
            &[],
            Some(credentials.clone()),
        )
        .await;
    assert!(signed_up.header("set-cookie").is_some());
    let logged_in = c
        .call("POST", "/auth/login", "/auth/login", &[], Some(credentials))
        .await;
    let cookie = logged_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session = [("cookie", cookie.as_str())];
    c.call("GET", "/auth/me", "/auth/me", &session, None).await;
    c.call(
        "POST",
        "/projects",
        "/projects",
        &session,
        Some(json!({"slug": "second-project"})),
    )
    .await;
    c.call("GET", "/projects", "/projects", &session, None)
        .await;
    c.call(
        "POST",
        "/auth/logout",
        "/auth/logout",
        &[
            ("cookie", cookie.as_str()),
            ("content-type", "application/json"),
        ],
        None,
    )
    .await;

    // Every documented JSON answer was checked against a real one.
    let unchecked: Vec<_> = operations(&c.doc)
        .into_iter()
        .filter(|((method, _), op)| {
            method != "HEAD"
                && op["responses"].as_object().unwrap().iter().any(|(s, r)| {
                    s.starts_with('2') && r["content"]["application/json"].is_object()
                })
        })
        .map(|(k, _)| k)
        .filter(|k| !c.seen.contains(k))
        .collect();
    assert!(
        unchecked.is_empty(),
        "add a call to this test for each of {unchecked:?}"
    );
}

#[tokio::test]
async fn a_limited_quota_is_a_number_in_the_schedule_result() {
    let h = Harness::with(
        timetriggers_core::MonthQuota::Limited(5),
        timetriggers_http::HttpConfig::default(),
    )
    .await;
    let mut c = Checker::with(h).await;
    let t = c.h.tenant("acme").await;
    let k = t.key.as_str();
    let reply = c
        .call(
            "POST",
            "/schedule",
            "/schedule",
            &[("ttr-api-key", k), ("ttr-url", TARGET)],
            None,
        )
        .await;
    assert_eq!(reply.json()["monthQuotaRemaining"], 4);
}

#[test]
fn the_validator_refuses_what_it_should() {
    let doc = json!({"components": {"schemas": {"A": {
        "type": "object",
        "required": ["n"],
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "s": {"type": ["string", "null"], "format": "date-time"},
            "e": {"type": "string", "enum": ["x"]},
            "q": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["Infinity"]}]}
        }
    }}}});
    let a = json!({"$ref": "#/components/schemas/A"});
    assert!(validate(&doc, &a, &json!({"n": 1, "s": null, "q": "Infinity"}), "").is_ok());
    assert!(validate(
        &doc,
        &a,
        &json!({"n": 1, "s": "2026-11-22T09:30:00.000Z"}),
        ""
    )
    .is_ok());
    for bad in [
        json!({}),
        json!({"n": -1}),
        json!({"n": "1"}),
        json!({"n": 1, "extra": 1}),
        json!({"n": 1, "s": "2026-11-22T09:30:00Z"}),
        json!({"n": 1, "e": "y"}),
        json!({"n": 1, "q": "NaN"}),
        json!([]),
    ] {
        assert!(validate(&doc, &a, &bad, "").is_err(), "{bad}");
    }
}
