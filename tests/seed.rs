//! First-start seeding on both backends: what it creates, and that it is idempotent.

mod common;

use std::collections::HashSet;

use common::{Backend, TestDb};
use rswitch::secret::{Secret, verify_password};
use rswitch::store::seed::{self, BASE_CONFIG_DEFAULTS, DEFAULT_GROUP};
use rswitch::store::*;

async fn first_start_seeds_group_extensions_base_config_and_admin(backend: Backend) {
    let db = TestDb::new(backend).await;
    let report = seed::seed(&db.store, None).await.unwrap();
    assert_eq!(report.extensions_created, 500);
    assert_eq!(report.base_config_keys_added, 17);
    assert_eq!(report.routes_created, 1);

    // The internal-calls route: enabled, last in order, bridging the dialled extension.
    let (live, problems) = rswitch::pbx::live::LiveConfig::load(&db.store)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let snapshot = live.current();
    let matched = snapshot.match_route("1001").expect("1001 is routed");
    assert_eq!(matched.route.route.name, seed::INTERNAL_ROUTE_NAME);
    assert_eq!(matched.route.details[0].action, Action::Bridge);
    assert_eq!(matched.substitute(&matched.route.details[0].data), "1001");
    assert!(snapshot.match_route("1500").is_none());
    assert!(snapshot.match_route("91001").is_none(), "anchored");

    let groups = db.store.all::<ExtensionGroup>().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, DEFAULT_GROUP);

    let extensions = db.store.all::<Extension>().await.unwrap();
    let numbers: HashSet<u32> = extensions
        .iter()
        .map(|e| e.number.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1000..=1499).collect());
    let passwords: HashSet<&str> = extensions.iter().map(|e| e.password.expose()).collect();
    assert_eq!(passwords.len(), 500, "every extension has its own password");
    for e in &extensions {
        let p = e.password.expose();
        assert!(p.len() >= 12, "{}: password too short", e.number);
        assert_ne!(p, "1234");
        assert_eq!(e.group_id, Some(groups[0].id));
        assert_eq!(e.extension_type, ExtensionType::Direct);
    }

    let base = db.store.all::<BaseConfigEntry>().await.unwrap();
    let keys: Vec<&str> = base.iter().map(|b| b.key.as_str()).collect();
    let expected: Vec<&str> = BASE_CONFIG_DEFAULTS.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(keys, expected, "the 17 keys in spec order");
    assert_eq!(
        base.iter().map(|b| b.id).collect::<Vec<_>>(),
        (1..=17).collect::<Vec<i64>>(),
        "ids 1..17 as in the spec"
    );
    let value = |k: &str| base.iter().find(|b| b.key == k).unwrap().value.clone();
    assert_eq!(value("morning_start_time"), "8:00:00");
    assert_eq!(value("ring_ext"), ".wav");

    let admin = report.initial_admin.expect("admin created");
    assert!(admin.generated);
    assert!(admin.password.expose().len() >= 12);
    let users = db.store.all::<AdminUser>().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].username, "admin");
    assert!(
        users[0].password_hash.expose().starts_with("$argon2id$"),
        "stored hashed"
    );
    assert!(verify_password(
        admin.password.expose(),
        users[0].password_hash.expose()
    ));
    assert!(
        users[0].must_change_password,
        "a generated password must be changed"
    );
}

async fn seeding_twice_changes_nothing_and_never_resets_passwords(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed::seed(&db.store, None).await.unwrap();
    let extensions_before = db.store.all::<Extension>().await.unwrap();
    let admins_before = db.store.all::<AdminUser>().await.unwrap();
    let base_before = db.store.all::<BaseConfigEntry>().await.unwrap();

    // An operator edits things between starts.
    let mut edited = extensions_before[0].clone();
    edited.password = Secret::new("operator-chosen-pw");
    db.store.update(&edited).await.unwrap();
    db.store
        .delete::<Extension>(extensions_before[1].id)
        .await
        .unwrap();
    let mut key = base_before[2].clone();
    key.value = "/srv/records".into();
    db.store.update(&key).await.unwrap();
    for route in db.store.all::<Route>().await.unwrap() {
        db.store.delete::<Route>(route.id).await.unwrap();
    }

    let report = seed::seed(&db.store, Some(&Secret::new("another-admin-pw")))
        .await
        .unwrap();
    assert_eq!(report.extensions_created, 0);
    assert_eq!(report.base_config_keys_added, 0);
    assert_eq!(
        report.routes_created, 0,
        "a deleted seeded route stays deleted"
    );
    assert!(db.store.all::<Route>().await.unwrap().is_empty());
    assert!(
        report.initial_admin.is_none(),
        "an existing admin is never replaced"
    );

    let extensions_after = db.store.all::<Extension>().await.unwrap();
    assert_eq!(
        extensions_after.len(),
        499,
        "a deleted preset extension does not come back"
    );
    assert_eq!(extensions_after[0].password.expose(), "operator-chosen-pw");
    for (before, after) in extensions_before[2..].iter().zip(&extensions_after[1..]) {
        assert_eq!(before, after);
    }
    assert_eq!(db.store.all::<AdminUser>().await.unwrap(), admins_before);
    let base_after = db.store.all::<BaseConfigEntry>().await.unwrap();
    assert_eq!(base_after[2].value, "/srv/records");
}

async fn configured_admin_password_is_used_and_not_flagged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let report = seed::seed(&db.store, Some(&Secret::new("from-the-environment")))
        .await
        .unwrap();
    let admin = report.initial_admin.unwrap();
    assert!(!admin.generated);
    let user = db.store.all::<AdminUser>().await.unwrap().remove(0);
    assert!(verify_password(
        "from-the-environment",
        user.password_hash.expose()
    ));
    assert!(!user.must_change_password);
}

async fn extension_ranges_skip_numbers_in_use(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed::seed(&db.store, None).await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    let sales = seed::group_by_name_or_create(&mut tx, "Sales")
        .await
        .unwrap();
    let report = seed::create_extension_range(&mut tx, 1498, 1502, Some(sales))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.created, ["1500", "1501", "1502"]);
    let skipped: Vec<&str> = report.skipped.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(skipped, ["1498", "1499"]);
    assert!(
        report
            .skipped
            .iter()
            .all(|(_, kind, _)| *kind == OwnerKind::Extension)
    );
    assert_eq!(
        db.store
            .count::<Extension>(&ListQuery::default())
            .await
            .unwrap(),
        503
    );
}

async fn admin_password_reset_replaces_the_hash(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed::seed(&db.store, None).await.unwrap();
    seed::reset_admin_password(&db.store, "admin", &Secret::new("brand-new-password"))
        .await
        .unwrap();
    let user = db.store.all::<AdminUser>().await.unwrap().remove(0);
    assert!(verify_password(
        "brand-new-password",
        user.password_hash.expose()
    ));
    assert!(!user.must_change_password);
}

on_both_backends!(
    first_start_seeds_group_extensions_base_config_and_admin,
    seeding_twice_changes_nothing_and_never_resets_passwords,
    configured_admin_password_is_used_and_not_flagged,
    extension_ranges_skip_numbers_in_use,
    admin_password_reset_replaces_the_hash,
);
