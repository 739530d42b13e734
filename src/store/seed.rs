//! First-start seeding and the bulk extension operations built on it.
//!
//! Seeding is idempotent: base-configuration keys are added only when missing, the default
//! group and the 500 extensions 1000–1499 (spec §3.2) are created once (a marker in `meta`
//! remembers it, so extensions an operator deleted do not come back), as is one route for
//! calls between them ("内线互转", `bridge $1`, last in order), and the `admin` user is
//! created only when there is no administrator at all. Nothing existing is ever overwritten,
//! least of all a password.
//!
//! What this module does not do: write files or log secrets. The caller gets the initial
//! admin password back and decides where it goes.

use super::entities::*;
use super::value::Value;
use super::{ListQuery, Store, StoreError, Tx};
use crate::clock::now_utc;
use crate::secret::{Secret, hash_password, random_password};

/// Name of the group the preset extensions belong to ("Default").
pub const DEFAULT_GROUP: &str = "默认";
/// The preset extension range of FSGui (spec §3.2).
pub const PRESET_EXTENSIONS: std::ops::RangeInclusive<u32> = 1000..=1499;
/// The administrator created at first start.
pub const ADMIN_USERNAME: &str = "admin";

const SEEDED_MARKER: &str = "seeded_extensions";
const SEEDED_ROUTE_MARKER: &str = "seeded_internal_route";

/// The route for calls between the preset extensions, seeded once: FSGui routed internal
/// calls through an ordinary route ("内线互转"), so rswitch ships one, last in order
/// (sequence [`INTERNAL_ROUTE_SEQUENCE`]) so that an operator's own routes come first.
pub const INTERNAL_ROUTE_NAME: &str = "内线互转";
pub const INTERNAL_ROUTE_PATTERN: &str = r"^(1[0-4]\d\d)$";
pub const INTERNAL_ROUTE_SEQUENCE: i64 = 1000;

/// The base configuration keys of spec §2.4, in their id order, with defaults and meaning.
pub const BASE_CONFIG_DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "base_path",
        "/opt/works/src",
        "Installation directory (kept for FSGui compatibility)",
    ),
    (
        "linux_platform",
        "true",
        "Whether the server runs Linux (true) or Windows (false)",
    ),
    (
        "record_path",
        "/home/voices/records",
        "Directory of call recordings",
    ),
    (
        "ring_path",
        "/home/voices/rings",
        "Root directory of ring-tone files",
    ),
    (
        "job_number_prefix",
        "job_number_prefix.wav",
        "Prompt played before the job number",
    ),
    (
        "job_number_suffix",
        "job_number_suffix.wav",
        "Prompt played after the job number",
    ),
    (
        "voicemail",
        "common/voicemail.wav",
        "Voicemail greeting prompt",
    ),
    (
        "ring_prefix",
        "/uploads/",
        "Upload path of ring tones, under ring_path",
    ),
    (
        "ring_ext",
        ".wav",
        "File extension of ring tones and recordings",
    ),
    (
        "FS_External_path",
        "/usr/local/freeswitch/conf/sip_profiles/external",
        "FreeSWITCH gateway directory: obsolete, kept for compatibility and ignored",
    ),
    (
        "use_time_plan",
        "true",
        "Whether the time plan (working hours) is enabled",
    ),
    (
        "morning_start_time",
        "8:00:00",
        "Start of the morning working period",
    ),
    (
        "morning_stop_time",
        "12:00:00",
        "End of the morning working period",
    ),
    (
        "afternoon_start_time",
        "13:00:00",
        "Start of the afternoon working period",
    ),
    (
        "afternoon_stop_time",
        "17:00:00",
        "End of the afternoon working period",
    ),
    (
        "conference_pin_file",
        "conference_pin.wav",
        "Prompt asking for the conference PIN",
    ),
    (
        "conference_pin_error_file",
        "conference_pin_error.wav",
        "Prompt saying the PIN was wrong",
    ),
];

/// What seeding did.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub base_config_keys_added: usize,
    pub extensions_created: usize,
    /// The internal-calls route, created once.
    pub routes_created: usize,
    /// Set when this run created the administrator.
    pub initial_admin: Option<InitialAdmin>,
}

/// The administrator created by seeding.
#[derive(Debug)]
pub struct InitialAdmin {
    pub username: String,
    pub password: Secret,
    /// True when the password was generated (not given by the operator).
    pub generated: bool,
}

/// What a range creation did.
#[derive(Debug, Default)]
pub struct RangeReport {
    pub created: Vec<String>,
    /// Numbers left alone because something already has them.
    pub skipped: Vec<(String, OwnerKind, i64)>,
}

/// Seeds an empty database, completes a partial one, and leaves a seeded one as it is.
///
/// `admin_password`: the password for a newly created `admin` (e.g. from
/// `RSWITCH_ADMIN_PASSWORD`); `None` generates one.
///
/// # Errors
/// Database failure; nothing is half-written (one transaction).
pub async fn seed(
    store: &Store,
    admin_password: Option<&Secret>,
) -> Result<SeedReport, StoreError> {
    let mut tx = store.begin().await?;
    let mut report = SeedReport {
        base_config_keys_added: add_missing_base_config(&mut tx).await?,
        ..SeedReport::default()
    };
    if tx.meta(SEEDED_MARKER).await?.is_none() {
        let group_id = group_by_name_or_create(&mut tx, DEFAULT_GROUP).await?;
        let range = create_extension_range(
            &mut tx,
            *PRESET_EXTENSIONS.start(),
            *PRESET_EXTENSIONS.end(),
            Some(group_id),
        )
        .await?;
        report.extensions_created = range.created.len();
        tx.set_meta(SEEDED_MARKER, &now_utc().to_rfc3339()).await?;
    }
    if tx.meta(SEEDED_ROUTE_MARKER).await?.is_none() {
        let route_id = tx
            .insert(&Route {
                id: 0,
                name: INTERNAL_ROUTE_NAME.to_owned(),
                condition_field: ConditionField::DestinationNumber,
                pattern: INTERNAL_ROUTE_PATTERN.to_owned(),
                sequence: INTERNAL_ROUTE_SEQUENCE,
                enabled: true,
                continue_on_fail: false,
                time_condition: TimeCondition::Always,
            })
            .await?;
        tx.insert(&RouteDetail {
            id: 0,
            route_id,
            name: "转接".to_owned(),
            action: Action::Bridge,
            data: "$1".to_owned(),
            ring_id: None,
            sequence: 0,
            is_external: false,
            gateway_group_id: None,
            gateway_id: None,
            area_enabled: false,
        })
        .await?;
        report.routes_created = 1;
        tx.set_meta(SEEDED_ROUTE_MARKER, &now_utc().to_rfc3339())
            .await?;
    }
    if tx.count::<AdminUser>(&ListQuery::default()).await? == 0 {
        let (password, generated) = match admin_password {
            Some(p) if !p.is_empty() => (p.clone(), false),
            _ => (random_password(), true),
        };
        create_admin(&mut tx, ADMIN_USERNAME, &password, generated).await?;
        report.initial_admin = Some(InitialAdmin {
            username: ADMIN_USERNAME.to_owned(),
            password,
            generated,
        });
    }
    tx.commit().await?;
    Ok(report)
}

async fn add_missing_base_config(tx: &mut Tx) -> Result<usize, StoreError> {
    let existing = tx.all::<BaseConfigEntry>().await?;
    let mut added = 0;
    for (key, value, description) in BASE_CONFIG_DEFAULTS {
        if existing.iter().any(|e| e.key == *key) {
            continue;
        }
        tx.insert(&BaseConfigEntry {
            id: 0,
            key: (*key).to_owned(),
            value: (*value).to_owned(),
            description: (*description).to_owned(),
        })
        .await?;
        added += 1;
    }
    Ok(added)
}

/// The id of the group called `name`, created if it does not exist.
///
/// # Errors
/// Database failure.
pub async fn group_by_name_or_create(tx: &mut Tx, name: &str) -> Result<i64, StoreError> {
    let query = ListQuery::default().filter("name", Value::Text(Some(name.to_owned())));
    if let Some(group) = tx.list::<ExtensionGroup>(&query).await?.into_iter().next() {
        return Ok(group.id);
    }
    tx.insert(&ExtensionGroup {
        id: 0,
        name: name.to_owned(),
    })
    .await
}

/// Creates the extensions `from..=to` that do not exist yet, each with its own random
/// password. Numbers already in the numbering plan (as extensions or anything else) are
/// skipped and reported; nothing existing changes.
///
/// # Errors
/// Database failure.
pub async fn create_extension_range(
    tx: &mut Tx,
    from: u32,
    to: u32,
    group_id: Option<i64>,
) -> Result<RangeReport, StoreError> {
    let mut report = RangeReport::default();
    let now = now_utc();
    for n in from..=to {
        let number = n.to_string();
        if let Some((kind, id)) = tx.number_owner(&number).await? {
            report.skipped.push((number, kind, id));
            continue;
        }
        tx.insert(&Extension {
            id: 0,
            name: number.clone(),
            number: number.clone(),
            extension_type: ExtensionType::Direct,
            password: random_password(),
            group_id,
            // Preset extensions behave as ordinary phones (they ring without agent login) and
            // may not break out to the PSTN until an operator allows it: no toll fraud by default.
            allow_outbound: false,
            answer_when_offline: true,
            play_job_number: false,
            job_number: String::new(),
            created_at: now,
            updated_at: now,
        })
        .await?;
        report.created.push(number);
    }
    Ok(report)
}

/// Creates an administrator with an argon2id hash of `password`.
///
/// # Errors
/// The user exists already ([`StoreError::Duplicate`]), or database failure.
pub async fn create_admin(
    tx: &mut Tx,
    username: &str,
    password: &Secret,
    must_change_password: bool,
) -> Result<i64, StoreError> {
    let now = now_utc();
    tx.insert(&AdminUser {
        id: 0,
        username: username.to_owned(),
        password_hash: Secret::new(hash(password)?),
        must_change_password,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    })
    .await
}

/// Sets a new password for `username`, creating the user if it does not exist.
///
/// # Errors
/// Database failure.
pub async fn reset_admin_password(
    store: &Store,
    username: &str,
    password: &Secret,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let query = ListQuery::default().filter("username", Value::Text(Some(username.to_owned())));
    match tx.list::<AdminUser>(&query).await?.into_iter().next() {
        Some(mut user) => {
            user.password_hash = Secret::new(hash(password)?);
            user.must_change_password = false;
            user.updated_at = now_utc();
            tx.update(&user).await?;
        }
        None => {
            create_admin(&mut tx, username, password, false).await?;
        }
    }
    tx.commit().await
}

fn hash(password: &Secret) -> Result<String, StoreError> {
    hash_password(password.expose()).map_err(|e| StoreError::Invalid {
        table: "admin_user",
        detail: format!("password could not be hashed: {e}"),
    })
}
