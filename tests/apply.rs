//! Apply on both backends: the snapshot follows the database, and a broken configuration is
//! refused with the offending rows named while the previous snapshot stays in force.

mod common;

use common::{Backend, TestDb};
use rswitch::pbx::live::{ApplyOutcome, LiveConfig};
use rswitch::store::seed;
use rswitch::store::*;

fn route(name: &str, pattern: &str, sequence: i64) -> Route {
    Route {
        id: 0,
        name: name.into(),
        condition_field: ConditionField::DestinationNumber,
        pattern: pattern.into(),
        sequence,
        enabled: true,
        continue_on_fail: false,
        time_condition: TimeCondition::Always,
    }
}

fn bridge(route_id: i64, data: &str) -> RouteDetail {
    RouteDetail {
        id: 0,
        route_id,
        name: "Transfer".into(),
        action: Action::Bridge,
        data: data.into(),
        ring_id: None,
        sequence: 0,
        is_external: false,
        gateway_group_id: None,
        gateway_id: None,
        area_enabled: false,
    }
}

async fn apply_with_a_broken_regex_names_the_row_and_keeps_the_previous_snapshot(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed::seed(&db.store, None).await.unwrap();
    let internal = db
        .store
        .insert(&route("内线互转10头", r"^1[0-4]\d\d$", 1))
        .await
        .unwrap();
    db.store.insert(&bridge(internal, "$0")).await.unwrap();

    let (live, problems) = LiveConfig::load(&db.store).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let first = live.current();
    assert_eq!(first.version, 1);
    assert_eq!(first.extensions.len(), 500);
    assert_eq!(first.match_route("1009").unwrap().route.route.id, internal);

    // A good change applies and gives a new version.
    let queue_route = db.store.insert(&route("Queue", "^3300$", 4)).await.unwrap();
    let outcome = live.apply(&db.store).await.unwrap();
    let ApplyOutcome::Applied { version } = outcome else {
        panic!("expected Applied, got {outcome:?}")
    };
    assert_eq!(version, 2);
    assert_eq!(
        live.current().match_route("3300").unwrap().route.route.id,
        queue_route
    );

    // A broken regex is refused and named; the running snapshot stays.
    let broken = db
        .store
        .insert(&route("broken", r"^72(\d+$", 2))
        .await
        .unwrap();
    let outcome = live.apply(&db.store).await.unwrap();
    let ApplyOutcome::Refused {
        kept_version,
        problems,
    } = outcome
    else {
        panic!("expected Refused, got {outcome:?}")
    };
    assert_eq!(kept_version, 2);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].entity, problems[0].id, problems[0].field),
        ("route", broken, "pattern")
    );
    assert!(problems[0].message.contains(r"^72(\d+$"), "{}", problems[0]);
    assert_eq!(
        live.current().version,
        2,
        "the previous snapshot stays in force"
    );
    assert_eq!(live.last_problems().len(), 1);

    // A call that began earlier keeps its snapshot even after a later Apply succeeds.
    let held_by_a_call = live.current();
    let mut fixed = db.store.get::<Route>(broken).await.unwrap().unwrap();
    fixed.pattern = r"^72(\d+)$".into();
    db.store.update(&fixed).await.unwrap();
    db.store.insert(&bridge(broken, "$1")).await.unwrap();
    let ApplyOutcome::Applied { version } = live.apply(&db.store).await.unwrap() else {
        panic!("fixed config applies")
    };
    assert!(version > 2);
    assert!(held_by_a_call.match_route("721009").is_none());
    let current = live.current();
    let m = current
        .match_route("721009")
        .expect("the fixed route is live");
    assert_eq!(m.substitute(&m.route.details[0].data), "1009");
}

async fn apply_reports_dangling_references(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed::seed(&db.store, None).await.unwrap();
    let (live, _) = LiveConfig::load(&db.store).await.unwrap();
    let r = db.store.insert(&route("IVR", "^2300$", 3)).await.unwrap();
    let mut submenu = bridge(r, "2300");
    submenu.action = Action::Submenu;
    let detail = db.store.insert(&submenu).await.unwrap();
    let ApplyOutcome::Refused { problems, .. } = live.apply(&db.store).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(
        (problems[0].entity, problems[0].id),
        ("route_detail", detail)
    );
    assert!(problems[0].message.contains("no IVR"), "{}", problems[0]);
}

on_both_backends!(
    apply_with_a_broken_regex_names_the_row_and_keeps_the_previous_snapshot,
    apply_reports_dangling_references,
);
