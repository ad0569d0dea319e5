//! Cron schedules through `/schedule` (generators) and `GET /cron/next`.

use axum::body::Body;
use http::{Method, Request};
use serde_json::Value;
use timetriggers_core::JobId;

use crate::common::{Harness, Reply, TARGET};

async fn cron_next(h: &Harness, key: Option<&str>, query: &str) -> Reply {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(format!("/cron/next?{query}"));
    if let Some(key) = key {
        req = req.header("ttr-api-key", key);
    }
    h.send(req.body(Body::empty()).unwrap()).await
}

fn times(v: &Value) -> Vec<&str> {
    v["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_cron_schedule_makes_a_generator_with_its_first_occurrence() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let v = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-scheduled-at", "*/5 * * * *"),
                ("ttr-custom-key", "every-5"),
            ],
        )
        .await;
    assert_eq!(v["kind"], "generator");
    assert_eq!(v["operation"], "schedule");
    assert_eq!(v["scheduledAt"], "2026-11-22T09:35:00.000Z");
    let id = v["triggerId"].as_str().unwrap().to_owned();

    // Same key: rescheduled in place, in New York time.
    let v = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-scheduled-at", "30 9 * * 1-5"),
                ("ttr-timezone", "America/New_York"),
                ("ttr-custom-key", "every-5"),
            ],
        )
        .await;
    assert_eq!(v["triggerId"], id.as_str());
    assert_eq!(v["operation"], "reschedule");
    assert_eq!(v["kind"], "generator");
    // Sunday 2026-11-22 04:30 in New York: next weekday 09:30 EST is Monday 14:30Z.
    assert_eq!(v["scheduledAt"], "2026-11-23T14:30:00.000Z");

    // And back to a one-off job, same id.
    let v = h
        .schedule_ok(
            &t.key,
            &[
                ("ttr-scheduled-at", "2026-12-01T00:00:00Z"),
                ("ttr-trigger-id", &id),
            ],
        )
        .await;
    assert_eq!(v["triggerId"], id.as_str());
    assert_eq!(v["kind"], "job");
    let job = h
        .service
        .get_job(&t.project, &JobId::new(&id))
        .await
        .unwrap();
    assert_eq!(job.custom_key.as_deref(), Some("every-5"));

    // A generator can be cancelled by its key.
    h.schedule_ok(
        &t.key,
        &[
            ("ttr-scheduled-at", "@hourly"),
            ("ttr-custom-key", "hourly"),
        ],
    )
    .await;
    let reply = h
        .cancel(
            Method::DELETE,
            &[
                ("ttr-api-key", t.key.as_str()),
                ("ttr-custom-key", "hourly"),
            ],
        )
        .await;
    assert_eq!(reply.status, 204);
}

#[tokio::test]
async fn invalid_cron_schedules_are_400_naming_the_problem() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for (expr, tz, needle) in [
        ("0 0 30 2 *", None, "never"),
        ("* * * * * * 2026", None, "year"),
        ("61 * * * *", None, "61"),
        ("0 0 L * *", None, "L"),
        ("5-1 * * * *", None, "5-1"),
        ("0 9 * * *", Some("Mars/Olympus"), "Mars/Olympus"),
    ] {
        let mut headers = vec![("ttr-url", TARGET), ("ttr-scheduled-at", expr)];
        if let Some(tz) = tz {
            headers.push(("ttr-timezone", tz));
        }
        let reply = h.schedule(Method::POST, Some(&t.key), &headers, b"").await;
        let message = reply.error(400, "BadRequest");
        assert!(message.contains(needle), "{expr}: {message}");
    }
}

#[tokio::test]
async fn cron_next_lists_fire_times_as_a_generator_fires_them() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    let v = cron_next(&h, Some(&t.key), "expression=*/15+*+*+*+*&count=3")
        .await
        .ok_json();
    assert_eq!(
        times(&v),
        [
            "2026-11-22T09:45:00.000Z",
            "2026-11-22T10:00:00.000Z",
            "2026-11-22T10:15:00.000Z"
        ]
    );
    // Default count 10; `from` explicit.
    let v = cron_next(
        &h,
        Some(&t.key),
        "expression=%40daily&from=2026-01-01T00:00:00Z",
    )
    .await
    .ok_json();
    assert_eq!(times(&v).len(), 10);
    assert_eq!(times(&v)[0], "2026-01-02T00:00:00.000Z");
}

#[tokio::test]
async fn cron_next_from_inside_a_repeated_hour() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    // New York falls back on 2026-11-01: 01:00–02:00 EDT (05:00–06:00Z) is repeated as EST
    // (06:00–07:00Z). From 06:20Z (01:20 EST, the second pass):
    let from = "from=2026-11-01T06:20:00Z&timezone=America%2FNew_York&count=3";
    // A fixed-time 01:30 already fired in the first pass (05:30Z): next is the following day.
    let v = cron_next(&h, Some(&t.key), &format!("expression=30+1+*+*+*&{from}"))
        .await
        .ok_json();
    assert_eq!(times(&v)[0], "2026-11-02T06:30:00.000Z");
    // A wildcard */15 follows the real clock through the second pass.
    let v = cron_next(&h, Some(&t.key), &format!("expression=*/15+*+*+*+*&{from}"))
        .await
        .ok_json();
    assert_eq!(
        times(&v),
        [
            "2026-11-01T06:30:00.000Z",
            "2026-11-01T06:45:00.000Z",
            "2026-11-01T07:00:00.000Z"
        ]
    );
}

#[tokio::test]
async fn cron_next_refuses_bad_input() {
    let h = Harness::new().await;
    let t = h.tenant("acme").await;
    for (query, needle) in [
        ("count=3", "expression"),
        ("expression=0+0+30+2+*", "never"),
        (
            "expression=*+*+*+*+*&timezone=Nowhere%2FLand",
            "Nowhere/Land",
        ),
        ("expression=*+*+*+*+*&count=0", "count"),
        ("expression=*+*+*+*+*&count=101", "count"),
        ("expression=*+*+*+*+*&count=abc", "count"),
        ("expression=*+*+*+*+*&count=-1", "count"),
        ("expression=*+*+*+*+*&from=yesterday", "from"),
    ] {
        let message = cron_next(&h, Some(&t.key), query)
            .await
            .error(400, "BadRequest");
        assert!(message.contains(needle), "{query}: {message}");
    }
    cron_next(&h, None, "expression=*+*+*+*+*")
        .await
        .error(401, "Unauthorized");
    cron_next(&h, Some("ttr_unknown"), "expression=*+*+*+*+*")
        .await
        .error(401, "Unauthorized");
}
