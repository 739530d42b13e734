//! Audio through rswitch between two real softphones (Debian `baresip-core`): extension 1000
//! calls 1001, each phone plays a WAV tone of its own frequency and records what it
//! receives; the recording of each side must carry the other side's tone (Goertzel power
//! against the whole signal) and not its own. Once with both phones on PCMU (rswitch relays
//! the packets untouched) and once with the callee forced to G.722 (rswitch decodes,
//! resamples 8 ↔ 16 kHz and encodes in both directions). The CDR names the codecs. A callee
//! extension with `play_job_number` has its job number announced to the caller first. The
//! API plays to, records, sends DTMF to and hangs up a call between two phones; it places
//! calls (originate) and lets a supervisor listen in, whisper and join as a third party.
#![allow(clippy::disallowed_methods)] // runs real processes, waits on real time

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::api::until_call_state;
use common::*;
use rswitch::media::wav::{self, WavWriter};
use rswitch::store::{Cdr, ConnectOptions, ListQuery, Registration, Store};

fn baresip() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("baresip"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("baresip is not installed: apt-get install baresip-core (make test installs it)")
        })
}

/// A free port `p` with `p` and `p + 1` free for UDP and TCP (baresip listens for SIP on
/// `p` and for SIP over TLS on `p + 1`).
fn free_sip_port() -> u16 {
    loop {
        let port = free_tcp_port();
        let free = |p: u16| {
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        };
        if port < u16::MAX && free(port) && free(port + 1) {
            return port;
        }
    }
}

/// Writes `seconds` of a sine at `frequency` (−10 dBFS) as a mono 16-bit WAV.
fn tone_wav(path: &Path, frequency: f64, sample_rate: u32, seconds: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = WavWriter::new(file, sample_rate, 1).unwrap();
    let samples: Vec<i16> = (0..sample_rate * seconds)
        .map(|n| {
            let t = f64::from(n) / f64::from(sample_rate);
            (10_362.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16
        })
        .collect();
    writer.write(&samples).unwrap();
    writer.finish().unwrap();
}

/// The share of the signal's energy at `frequency`, the median over 100 ms blocks
/// (Goertzel; a pure tone at that frequency gives 1.0).
fn tone_share(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    let block = (sample_rate / 10) as usize;
    let mut shares: Vec<f64> = samples
        .chunks_exact(block)
        .map(|chunk| {
            let omega = 2.0 * std::f64::consts::PI * frequency / f64::from(sample_rate);
            let coefficient = 2.0 * omega.cos();
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            let mut energy = 0.0f64;
            for &x in chunk {
                let x = f64::from(x);
                energy += x * x;
                let s0 = x + coefficient * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
            if energy < 1.0 {
                0.0
            } else {
                2.0 * power / (chunk.len() as f64 * energy)
            }
        })
        .collect();
    if shares.is_empty() {
        return 0.0;
    }
    shares.sort_by(f64::total_cmp);
    shares[shares.len() / 2]
}

/// A baresip softphone registered as an extension, driven over `ctrl_tcp`.
struct Phone {
    child: Child,
    dir: PathBuf,
    control: u16,
}

impl Phone {
    /// Starts a phone for extension `number` that plays `tone` and records what it
    /// receives; `codec` is the only codec it offers or accepts (`PCMU/8000/1`, …).
    fn start(dir: &Path, sip: &str, number: &str, tone: &Path, module: &str, codec: &str) -> Phone {
        let password = extension_password(dir, number);
        let phone_dir = dir.join(format!("phone-{number}"));
        std::fs::create_dir_all(&phone_dir).unwrap();
        let sip_port = free_sip_port();
        let control = free_tcp_port();
        std::fs::write(
            phone_dir.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\ndns_server 127.0.0.1:53\n\
                 module_path /usr/lib/baresip/modules\nmodule {module}\nmodule aufile.so\n\
                 module sndfile.so\nmodule_app account.so\nmodule_app menu.so\n\
                 module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{control}\n\
                 audio_source aufile,{}\nsnd_path {}\n",
                tone.display(),
                phone_dir.display()
            ),
        )
        .unwrap();
        std::fs::write(
            phone_dir.join("accounts"),
            format!(
                "<sip:{number}@{sip};transport=udp>;auth_pass={password};regint=60;\
                 answermode=auto;audio_codecs={codec}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(phone_dir.join("baresip.log")).unwrap();
        let child = Command::new(baresip())
            .arg("-f")
            .arg(&phone_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start baresip");
        Phone {
            child,
            dir: phone_dir,
            control,
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("baresip.log")).unwrap_or_default())
            .into_owned()
    }

    /// Sends one `ctrl_tcp` command (a netstring of JSON) and returns once it is answered.
    fn command(&self, command: &str, params: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.control)) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    panic!("baresip control port: {error}; its log:\n{}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let json = serde_json::json!({"command": command, "params": params, "token": "t"});
        let text = json.to_string();
        stream
            .write_all(format!("{}:{text},", text.len()).as_bytes())
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&received).contains("\"response\":true") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.contains("\"ok\":true"),
            "baresip refused {command}: {text}; its log:\n{}",
            self.log()
        );
    }

    /// What the phone received in its call, decoded (the sndfile module's `-dec.wav`), once
    /// the phone has closed it (its header tells the length only then).
    fn received(&self) -> wav::Audio {
        let path = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .unwrap_or_else(|| panic!("no recording; the phone's log:\n{}", self.log()));
        closed_recording(&path, &|| format!("the phone's log:\n{}", self.log()))
    }
}

/// The WAV at `path` once its writer has closed it (5 s at most); `context` tells what went
/// on when it does not.
fn closed_recording(path: &Path, context: &dyn Fn() -> String) -> wav::Audio {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let audio = wav::read(&std::fs::read(path).unwrap(), 64 << 20).ok();
        match audio {
            Some(audio) if !audio.samples.is_empty() => return audio,
            _ if Instant::now() > deadline => {
                panic!("{} stays empty; {}", path.display(), context())
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's SQLite store in `path`.
async fn store_in(path: &Path) -> Store {
    Store::connect(
        &format!("sqlite://{}", path.join("rswitch.db").display()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap()
}

/// The store of a server not started yet in `path`: migrated and seeded, to configure.
async fn seeded_store(path: &Path) -> Store {
    let status = rswitch_command(path).arg("migrate").status().unwrap();
    assert!(status.success(), "rswitch migrate failed");
    let db = store_in(path).await;
    rswitch::store::seed::seed(&db, None).await.unwrap();
    db
}

/// Sets the base setting `key` (spec §2.4) to `value` in a seeded store.
async fn set_base(db: &Store, key: &str, value: &str) {
    let mut entry = db
        .all::<rswitch::store::BaseConfigEntry>()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("a seeded {key}"));
    entry.value = value.to_owned();
    db.update(&entry).await.unwrap();
}

/// Waits (20 s at most) until every one of `phones` is registered.
async fn wait_registered(db: &Store, phones: &[(&str, &Phone)]) {
    let numbers: Vec<&str> = phones.iter().map(|(number, _)| *number).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !registered(db, &numbers).await {
        assert!(
            Instant::now() < deadline,
            "the phones did not register; logs:\n{}",
            phones
                .iter()
                .map(|(number, phone)| format!("{number}:\n{}", phone.log()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn registered(db: &Store, numbers: &[&str]) -> bool {
    let rows = db.all::<Registration>().await.unwrap();
    numbers.iter().all(|n| rows.iter().any(|r| r.aor == *n))
}

/// Calls 1001 from 1000 (1000 offers only `caller_codec`, 1001 accepts only
/// `callee_codec`) for about four seconds and checks what each side heard.
async fn tone_call(
    caller_module: &str,
    caller_codec: &str,
    callee_module: &str,
    callee_codec: &str,
) -> (Cdr, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = start_server_with_listeners(rswitch_command(path));
    let sip = listeners["sip_udp"].clone();
    let caller_rate = if caller_codec.contains("/16000") {
        16_000
    } else {
        8_000
    };
    let callee_rate = if callee_codec.contains("/16000") {
        16_000
    } else {
        8_000
    };
    let (caller_tone, callee_tone) = (600.0, 1400.0);
    tone_wav(&path.join("caller.wav"), caller_tone, caller_rate, 30);
    tone_wav(&path.join("callee.wav"), callee_tone, callee_rate, 30);
    let caller = Phone::start(
        path,
        &sip,
        "1000",
        &path.join("caller.wav"),
        caller_module,
        caller_codec,
    );
    let callee = Phone::start(
        path,
        &sip,
        "1001",
        &path.join("callee.wav"),
        callee_module,
        callee_codec,
    );
    let db = store_in(path).await;
    wait_registered(&db, &[("1000", &caller), ("1001", &callee)]).await;
    caller.command("dial", &format!("sip:1001@{sip}"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    caller.command("hangup", "");
    // The CDR is written when the call ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cdr = loop {
        let rows = db.list::<Cdr>(&ListQuery::default()).await.unwrap();
        if let Some(cdr) = rows.into_iter().next() {
            break cdr;
        }
        assert!(
            Instant::now() < deadline,
            "no CDR; logs:\n{}\n{}",
            caller.log(),
            callee.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let logs = format!("caller:\n{}\ncallee:\n{}", caller.log(), callee.log());
    for (phone, hears, not_own, label) in [
        (&caller, callee_tone, caller_tone, "the caller"),
        (&callee, caller_tone, callee_tone, "the callee"),
    ] {
        let audio = phone.received();
        let seconds = audio.samples.len() as f64 / f64::from(audio.sample_rate);
        assert!(
            seconds >= 3.0,
            "{label} received only {seconds:.1} s of audio\n{logs}"
        );
        let share = tone_share(&audio.samples, audio.sample_rate, hears);
        let own = tone_share(&audio.samples, audio.sample_rate, not_own);
        assert!(
            share > 0.9,
            "{label} should hear the other side's {hears} Hz tone: {share:.3} of the energy\n{logs}"
        );
        assert!(
            own < 0.01,
            "{label} hears its own {not_own} Hz tone back: {own:.3} of the energy\n{logs}"
        );
    }
    (cdr, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_to_baresip_pcmu_pass_through_carries_both_tones() {
    let (cdr, logs) = tone_call("g711.so", "PCMU/8000/1", "g711.so", "PCMU/8000/1").await;
    assert_eq!(cdr.read_codec, "PCMU", "{cdr:?}\n{logs}");
    assert_eq!(cdr.write_codec, "PCMU", "{cdr:?}");
    assert_eq!(cdr.caller_id_number, "1000");
    assert_eq!(cdr.destination_number, "1001");
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert!(cdr.answer_stamp.is_some() && cdr.billsec >= 4, "{cdr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_pcmu_to_baresip_g722_is_transcoded_both_ways() {
    let (cdr, logs) = tone_call("g711.so", "PCMU/8000/1", "g722.so", "G722/16000/1").await;
    assert_eq!(cdr.read_codec, "PCMU", "{cdr:?}\n{logs}");
    assert_eq!(cdr.write_codec, "G722", "{cdr:?}");
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
}

/// The dialplan actions that play to a caller, heard by a real phone: extension 1000 dials
/// 2001, whose route answers, sends DTMF 1 5 9, plays a ring tone (a 440 Hz WAV), announces
/// extension 1001's job number from the shipped prompts, records, waits and hangs up. The
/// phone's recording carries the ring tone and the speech after it, its log the digits; the
/// recording named by the CDR carries the phone's own tone. Then 1000 dials 3001, a feature
/// code that logs it in as an agent and sets it busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialplan_actions_play_to_a_real_phone_and_record_it() {
    use rswitch::store::{Action, ConditionField, RingTone, Route, RouteDetail, TimeCondition};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let records = path.join("records");
    let ring_file = path.join("ring-440.wav");
    tone_wav(&ring_file, 440.0, 8000, 1);
    {
        let db = seeded_store(path).await;
        set_base(&db, "record_path", &records.display().to_string()).await;
        let ring = db
            .insert(&RingTone {
                id: 0,
                name: "beep".into(),
                description: String::new(),
                file_path: ring_file.display().to_string(),
            })
            .await
            .unwrap();
        for (pattern, details) in [
            (
                "^(2001)$",
                vec![
                    (Action::Answer, ""),
                    (Action::Dtmf, "159"),
                    (Action::Playring, ""),
                    (Action::Jobnum, "1001"),
                    (Action::Record, ""),
                    (Action::Sleep, "1500"),
                    (Action::Hangup, ""),
                ],
            ),
            (
                "^(3001)$",
                vec![(Action::AgentLogin, ""), (Action::AgentBusy, "")],
            ),
        ] {
            let route = db
                .insert(&Route {
                    id: 0,
                    name: pattern.into(),
                    condition_field: ConditionField::DestinationNumber,
                    pattern: pattern.into(),
                    sequence: 0,
                    enabled: true,
                    continue_on_fail: false,
                    time_condition: TimeCondition::Always,
                })
                .await
                .unwrap();
            for (sequence, (action, data)) in details.into_iter().enumerate() {
                db.insert(&RouteDetail {
                    id: 0,
                    route_id: route,
                    name: String::new(),
                    action,
                    data: data.into(),
                    ring_id: (action == Action::Playring).then_some(ring),
                    sequence: sequence as i64,
                    is_external: false,
                    gateway_group_id: None,
                    gateway_id: None,
                    area_enabled: false,
                })
                .await
                .unwrap();
            }
        }
        db.close().await;
    }
    let config = path.join("rswitch.toml");
    std::fs::write(&config, "[events]\nlog = true\n").unwrap();
    let mut cmd = rswitch_command(path);
    cmd.arg("--config").arg(&config).env(
        "RSWITCH_SOUNDS_DIR",
        format!("{}/sounds", env!("CARGO_MANIFEST_DIR")),
    );
    let (_server, mut logs, listeners) = start_server_with_listeners(cmd);
    let sip = listeners["sip_udp"].clone();
    tone_wav(&path.join("caller.wav"), 600.0, 8000, 30);
    let phone = Phone::start(
        path,
        &sip,
        "1000",
        &path.join("caller.wav"),
        "g711.so",
        "PCMU/8000/1",
    );
    let db = store_in(path).await;
    wait_registered(&db, &[("1000", &phone)]).await;
    phone.command("dial", &format!("sip:2001@{sip}"));
    // The route hangs up by itself: wait for its CDR.
    let deadline = Instant::now() + Duration::from_secs(30);
    let cdr = loop {
        let rows = db.list::<Cdr>(&ListQuery::default()).await.unwrap();
        if let Some(cdr) = rows.into_iter().find(|c| c.destination_number == "2001") {
            break cdr;
        }
        assert!(Instant::now() < deadline, "no CDR:\n{}", phone.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = phone.log();
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING", "{cdr:?}");
    // What the phone heard: the ring tone (1 s of 440 Hz), then speech.
    let heard = phone.received();
    let rate = heard.sample_rate as usize;
    let windows: Vec<(f64, f64)> = heard
        .samples
        .chunks_exact(rate / 5)
        .map(|w| {
            let energy = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64;
            (tone_share(w, heard.sample_rate, 440.0), energy)
        })
        .collect();
    let ring_windows = windows.iter().filter(|(share, _)| *share > 0.9).count();
    assert!(
        (3..=6).contains(&ring_windows),
        "about a second of the 440 Hz ring tone: {ring_windows} windows of 200 ms\n{windows:?}"
    );
    let last_ring = windows.iter().rposition(|(share, _)| *share > 0.9).unwrap();
    let speech = windows[last_ring + 1..]
        .iter()
        .filter(|(share, energy)| *share < 0.5 && *energy > 1e5)
        .count();
    assert!(
        speech >= 5,
        "the job-number announcement follows the ring tone (at least a second of speech): {speech}\n{windows:?}"
    );
    // baresip logs each RFC 4733 event it receives, start and end.
    // (Its status line shares lines with other output: look for the text anywhere.)
    let received: Vec<String> = log
        .split("received event: ")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(')')
                .map(|(event, _)| format!("received event: {event})"))
        })
        .collect();
    assert_eq!(
        received,
        [
            "received event: '1' (end=0)",
            "received event: '1' (end=1)",
            "received event: '5' (end=0)",
            "received event: '5' (end=1)",
            "received event: '9' (end=0)",
            "received event: '9' (end=1)",
        ],
        "{log}"
    );
    // The recording the CDR names: the phone's 600 Hz tone, about the 1.5 s of the sleep.
    assert!(
        cdr.recording_path
            .starts_with(&records.display().to_string())
            && cdr.recording_path.ends_with(&format!("{}.wav", cdr.uuid)),
        "{cdr:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let recorded = loop {
        let audio = std::fs::read(&cdr.recording_path)
            .ok()
            .and_then(|bytes| wav::read(&bytes, 64 << 20).ok())
            .filter(|a| !a.samples.is_empty());
        if let Some(audio) = audio {
            break audio;
        }
        assert!(
            Instant::now() < deadline,
            "no finished recording at {}",
            cdr.recording_path
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = recorded.samples.len() as f64 / f64::from(recorded.sample_rate);
    assert!((1.0..4.0).contains(&seconds), "{seconds} s recorded");
    let share = tone_share(&recorded.samples, recorded.sample_rate, 600.0);
    assert!(share > 0.8, "the caller's tone in the recording: {share}");
    // PLAYRING and PLAYSTOP around the ring tone and the announcement.
    let events: Vec<u64> = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let codes: Vec<u64> = logs
                .seen
                .iter()
                .filter(|l| l["fields"]["message"] == "call event")
                .filter_map(|l| {
                    serde_json::from_str::<serde_json::Value>(l["fields"]["event"].as_str()?).ok()
                })
                .filter(|e| e["uuid"] == cdr.uuid.as_str())
                .filter_map(|e| e["evt_name"].as_u64())
                .collect();
            if codes.contains(&15) || Instant::now() > deadline {
                break codes;
            }
            logs.wait_for("call event", Duration::from_millis(200));
        }
    };
    assert_eq!(events, [1, 5, 8, 9, 8, 9, 6, 15], "{events:?}");

    // The agent feature code: logged in, busy; after the call its call state is ready.
    phone.command("dial", &format!("sip:3001@{sip}"));
    let changed = logs
        .wait_for_with(Duration::from_secs(10), |line| {
            line["fields"]["message"] == "agent state"
                && line["fields"]["extension"] == "1000"
                && line["fields"]["seat_status"] == "busy"
        })
        .unwrap_or_else(|| panic!("no agent state change:\n{}", phone.log()));
    assert_eq!(changed["fields"]["seat_state"], "up");
}

/// Extensions 1000 (playing 600 Hz) and 1001 (playing 1400 Hz), baresip on PCMU, registered
/// to the server at `sip`; and the server's store.
async fn pcmu_phones(path: &Path, sip: &str) -> (Phone, Phone, Store) {
    tone_wav(&path.join("caller.wav"), 600.0, 8000, 60);
    tone_wav(&path.join("callee.wav"), 1400.0, 8000, 60);
    let caller = Phone::start(
        path,
        sip,
        "1000",
        &path.join("caller.wav"),
        "g711.so",
        "PCMU/8000/1",
    );
    let callee = Phone::start(
        path,
        sip,
        "1001",
        &path.join("callee.wav"),
        "g711.so",
        "PCMU/8000/1",
    );
    let db = store_in(path).await;
    wait_registered(&db, &[("1000", &caller), ("1001", &callee)]).await;
    (caller, callee, db)
}

/// One more PCMU phone for extension `number`, playing a `frequency` tone.
fn tone_phone(path: &Path, sip: &str, number: &str, frequency: f64) -> Phone {
    let tone = path.join(format!("tone-{number}.wav"));
    tone_wav(&tone, frequency, 8000, 60);
    Phone::start(path, sip, number, &tone, "g711.so", "PCMU/8000/1")
}

/// Audio windows of 200 ms: (share of `frequency`, mean energy).
fn windows_of(audio: &wav::Audio, frequency: f64) -> Vec<(f64, f64)> {
    let rate = audio.sample_rate as usize;
    audio
        .samples
        .chunks_exact(rate / 5)
        .map(|w| {
            let energy = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64;
            (tone_share(w, audio.sample_rate, frequency), energy)
        })
        .collect()
}

/// 1001 has `play_job_number` (job number 27): when it answers 1000's call, the caller
/// hears the announcement (speech) before the callee's 1400 Hz tone, and the callee hears
/// silence meanwhile, then the caller's 600 Hz tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_extensions_job_number_is_announced_to_the_caller() {
    use rswitch::store::Extension;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    {
        let db = seeded_store(path).await;
        let mut agent = db
            .all::<Extension>()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.number == "1001")
            .expect("a seeded 1001");
        agent.play_job_number = true;
        agent.job_number = "27".into();
        db.update(&agent).await.unwrap();
        db.close().await;
    }
    let mut cmd = rswitch_command(path);
    cmd.env(
        "RSWITCH_SOUNDS_DIR",
        format!("{}/sounds", env!("CARGO_MANIFEST_DIR")),
    );
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);
    let sip = listeners["sip_udp"].clone();
    let (caller, callee, db) = pcmu_phones(path, &sip).await;
    caller.command("dial", &format!("sip:1001@{sip}"));
    tokio::time::sleep(Duration::from_secs(9)).await;
    caller.command("hangup", "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while db
        .list::<Cdr>(&ListQuery::default())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no CDR:\n{}", caller.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The caller: speech first, then the callee's tone.
    let caller_heard = windows_of(&caller.received(), 1400.0);
    let heard = &caller_heard;
    let first_tone = heard
        .iter()
        .position(|(share, _)| *share > 0.9)
        .unwrap_or_else(|| panic!("the caller never hears the callee: {heard:?}"));
    let speech = heard[..first_tone]
        .iter()
        .filter(|(share, energy)| *share < 0.5 && *energy > 1e5)
        .count();
    assert!(
        speech >= 5,
        "at least a second of announcement before the callee: {speech}\n{heard:?}"
    );
    let after = &heard[first_tone..];
    let tone_after = after.iter().filter(|(share, _)| *share > 0.9).count();
    assert!(
        tone_after * 10 >= after.len() * 8,
        "then the callee's tone: {tone_after} of {} windows\n{heard:?}",
        after.len()
    );
    // The callee: nothing of the announcement (rswitch sends it no audio meanwhile, so its
    // recording starts later), then the caller's tone throughout.
    let heard = windows_of(&callee.received(), 600.0);
    let tone = heard.iter().filter(|(share, _)| *share > 0.9).count();
    assert!(
        tone * 10 >= heard.len() * 9 && !heard.is_empty(),
        "the callee hears the caller's tone and no announcement: {tone} of {} windows\n{heard:?}",
        heard.len()
    );
    assert!(
        caller_heard.len() >= heard.len() + speech,
        "the callee heard nothing while the caller heard the announcement: caller {} windows, callee {}",
        caller_heard.len(),
        heard.len()
    );
}

/// The API on a call between two baresip phones: `senddtmf` to 1001 (its RFC 4733 events
/// arrive), `record` of the call (the file has the length recorded; one with a `Limit` longer
/// than the call is deleted), `playback` of a looping 440 Hz file to 1000 and `break` (1000
/// hears the file instead of 1001's tone, then the tone again), and `hangup`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_dtmf_record_playback_and_break_on_a_real_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let records = path.join("records");
    let (_server, _server_log, listeners, api) = api_server(path).await;
    let sip = listeners["sip_udp"].clone();
    let beep = path.join("beep-440.wav");
    tone_wav(&beep, 440.0, 8000, 1);
    let (caller, callee, _db) = pcmu_phones(path, &sip).await;
    caller.command("dial", &format!("sip:1001@{sip}"));
    until_call_state(&api, "1001", "talking", &|| callee.log());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let dtmf = api.post("/api/senddtmf", r#"{"PhoneNumber":"1001","Dtmf":"42"}"#);
    assert_eq!(dtmf.status, 200, "{}", dtmf.body);
    let bad = api.post("/api/senddtmf", r#"{"PhoneNumber":"1001","Dtmf":"4x"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);

    let kept = api.post(
        "/api/record",
        r#"{"PhoneNumber":"1000","Filepath":"api/kept.wav","Flag":"start","Limit":0}"#,
    );
    assert_eq!(kept.status, 200, "{}", kept.body);
    let twice = api.post(
        "/api/record",
        r#"{"PhoneNumber":"1001","Filepath":"api/again.wav","Flag":"start","Limit":0}"#,
    );
    assert_eq!(twice.status, 409, "one recording per call: {}", twice.body);
    let recording_started = Instant::now();

    let play = api.post(
        "/api/playback",
        &serde_json::json!({"PhoneNumber":"1000","FilePath":beep.display().to_string(),"Loopplay":"true"})
            .to_string(),
    );
    assert_eq!(play.status, 200, "{}", play.body);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stop_play = api.get("/api/break/1000");
    assert_eq!(stop_play.status, 200, "{}", stop_play.body);
    assert_eq!(
        api.get("/api/break/1000").status,
        409,
        "nothing plays any more"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stop = api.post("/api/record", r#"{"PhoneNumber":"1000","Flag":"stop"}"#);
    assert_eq!(stop.status, 200, "{}", stop.body);
    let recorded_for = recording_started.elapsed().as_secs_f64();
    // A recording with a minimum length the call will not reach is not kept.
    let short = api.post(
        "/api/record",
        r#"{"PhoneNumber":"1001","FilePath":"api/short.wav","Limit":"60"}"#,
    );
    assert_eq!(short.status, 200, "{}", short.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hangup = api.get("/api/hangup/1000");
    assert_eq!(hangup.status, 200, "{}", hangup.body);

    // 1001 received the two digits.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = callee.log();
        if log.contains("received event: '4' (end=1)")
            && log.contains("received event: '2' (end=1)")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no DTMF at 1001:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The recording: about as long as it ran, the parties' tones in it.
    let kept_path = records.join("api/kept.wav");
    let deadline = Instant::now() + Duration::from_secs(10);
    let recorded = loop {
        let audio = std::fs::read(&kept_path)
            .ok()
            .and_then(|bytes| wav::read(&bytes, 64 << 20).ok())
            .filter(|a| !a.samples.is_empty());
        if let Some(audio) = audio {
            break audio;
        }
        assert!(
            Instant::now() < deadline,
            "no recording at {}",
            kept_path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = recorded.samples.len() as f64 / f64::from(recorded.sample_rate);
    assert!(
        (recorded_for - 1.0..recorded_for + 0.5).contains(&seconds),
        "{seconds:.2} s recorded in {recorded_for:.2} s"
    );
    assert!(tone_share(&recorded.samples, recorded.sample_rate, 600.0) > 0.2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while records.join("api/short.wav").exists() {
        assert!(
            Instant::now() < deadline,
            "a recording shorter than its Limit is deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1000 heard 1001's tone, then the looping beep (about 2.5 s), then the tone again.
    let heard = windows_of(&caller.received(), 440.0);
    let beep_windows: Vec<usize> = heard
        .iter()
        .enumerate()
        .filter(|(_, (share, _))| *share > 0.9)
        .map(|(i, _)| i)
        .collect();
    assert!(
        (10..=15).contains(&beep_windows.len()),
        "about 2.5 s of the 440 Hz file: {} windows of 200 ms\n{heard:?}",
        beep_windows.len()
    );
    let (first, last) = (beep_windows[0], *beep_windows.last().unwrap());
    assert!(
        last - first < beep_windows.len() + 2,
        "the beep is one stretch: {beep_windows:?}"
    );
    let tone = windows_of(&caller.received(), 1400.0);
    let before = tone[..first].iter().filter(|(s, _)| *s > 0.9).count();
    let after = tone[last + 1..].iter().filter(|(s, _)| *s > 0.9).count();
    assert!(
        before >= 5 && after >= 5,
        "1001's tone before ({before}) and after ({after}) the playback\n{tone:?}"
    );
}

/// A server whose administrator password is `api-test-password`, recordings under
/// `records`, and its API logged in.
async fn api_server(
    path: &Path,
) -> (
    Server,
    std::sync::Mutex<LogReader>,
    HashMap<String, String>,
    common::api::Api,
) {
    let db = seeded_store(path).await;
    set_base(
        &db,
        "record_path",
        &path.join("records").display().to_string(),
    )
    .await;
    rswitch::store::seed::reset_admin_password(
        &db,
        "admin",
        &rswitch::secret::Secret::new("api-test-password"),
    )
    .await
    .unwrap();
    db.close().await;
    let (server, logs, listeners) = start_server_with_listeners(rswitch_command(path));
    let api = common::api::Api::login(&listeners["http"], "admin", "api-test-password");
    (server, std::sync::Mutex::new(logs), listeners, api)
}

/// `originate` between two registered phones: the API answers at once with the reserved
/// `Job_uuid`; 1000 rings first and is shown 1001 and the caller name, then 1001 rings and
/// is shown 1000; they talk (each hears the other's tone); the call and its CDR carry the
/// reserved UUID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_originate_rings_a_then_b_and_they_talk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, server_log, listeners, api) = api_server(path).await;
    let sip = listeners["sip_udp"].clone();
    let (caller, callee, db) = pcmu_phones(path, &sip).await;
    let logs = || logs_of(&[("1000", &caller), ("1001", &callee)], &server_log);

    let job = api.get("/api/get_uuid").json()["data"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = serde_json::json!({
        "Job_uuid": job, "Callername": "Sales desk", "Callernum": "1000", "Calleenum": "1001",
        "A_gatewayname": "", "B_gatewayname": "", "A_effective_caller_id_num": "1000",
        "B_effective_caller_id_num": "1001", "A_external": false, "B_external": "false"
    });
    let started = api.post("/api/originate", &body.to_string());
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["data"]["Job_uuid"], job.as_str());
    until_call_state(&api, "1001", "talking", &logs);
    let call = api.get(&format!("/api/v1/calls/{job}")).json()["data"].clone();
    assert_eq!(call["uuid"], job.as_str(), "{call}");
    assert_eq!(call["caller"], "1000");
    assert_eq!(call["callee"], "1001");
    assert_eq!(call["state"], "answered");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let hangup = api.get("/api/hangup/1001");
    assert_eq!(hangup.status, 200, "{}", hangup.body);

    // 1000 was called first, shown 1001; 1001 then, shown 1000.
    assert!(
        caller.log().contains("call on line 1 from sip:1001@")
            && callee.log().contains("call on line 1 from sip:1000@"),
        "who was shown whom:\n{}",
        logs()
    );
    for (phone, hears, label) in [(&caller, 1400.0, "1000"), (&callee, 600.0, "1001")] {
        let audio = phone.received();
        let share = tone_share(&audio.samples, audio.sample_rate, hears);
        assert!(
            share > 0.8,
            "{label} should hear the other's {hears} Hz: {share:.3}\n{}",
            logs()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let cdr = loop {
        let rows = db.list::<Cdr>(&ListQuery::default()).await.unwrap();
        if let Some(cdr) = rows.into_iter().next() {
            break cdr;
        }
        assert!(Instant::now() < deadline, "no CDR\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(cdr.uuid, job);
    assert_eq!(cdr.caller_id_number, "1000");
    assert_eq!(cdr.destination_number, "1001");
    assert!(cdr.answer_stamp.is_some() && cdr.billsec >= 3, "{cdr:?}");

    // A used reservation is not used twice; bad requests name their field.
    let again = api.post("/api/originate", &body.to_string());
    assert_eq!(again.status, 200, "{}", again.body);
    assert_ne!(again.json()["data"]["Job_uuid"], job.as_str());
    let _ = api.get("/api/hangup/1000");
    // Through a gateway: an unknown one is named; a known one is not built yet.
    let external = r#"{"Callernum":"1000","Calleenum":"018612345678","B_external":true,"B_gatewayname":"carrier"}"#;
    let unknown_gateway = api.post("/api/originate", external);
    assert_eq!(unknown_gateway.status, 404, "{}", unknown_gateway.body);
    assert!(
        unknown_gateway.body.contains("B_gatewayname"),
        "{}",
        unknown_gateway.body
    );
    let gateway = api.post(
        "/api/v1/gateways",
        r#"{"name":"carrier","url":"sip:carrier.example.net","realm":"carrier.example.net"}"#,
    );
    assert_eq!(gateway.status, 201, "{}", gateway.body);
    assert_eq!(api.post("/api/v1/apply", "").status, 200);
    let not_built = api.post("/api/originate", external);
    assert_eq!(not_built.status, 501, "{}", not_built.body);
    assert!(not_built.body.contains("B_external"), "{}", not_built.body);
    let unknown = api.post(
        "/api/originate",
        r#"{"Callernum":"1000","Calleenum":"999"}"#,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("Calleenum"), "{}", unknown.body);
    let shown = api.post(
        "/api/originate",
        r#"{"Callernum":"1000","Calleenum":"1001","A_effective_caller_id_num":"10 01>"}"#,
    );
    assert_eq!(shown.status, 400, "{}", shown.body);
}

/// What went on, for a failed assertion: each phone's log under its number, then the
/// server's lines not shown yet.
fn logs_of(phones: &[(&str, &Phone)], server_log: &std::sync::Mutex<LogReader>) -> String {
    let mut text = String::new();
    for (number, phone) in phones {
        text += &format!("{number}:\n{}\n", phone.log());
    }
    text + "rswitch:\n" + &server_log.lock().unwrap().drain()
}

/// Waits (15 s at most) until `phone`'s log holds `text` `times` times.
fn until_logged(phone: &Phone, text: &str, times: usize, context: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while phone.log().matches(text).count() < times {
        assert!(
            Instant::now() < deadline,
            "{text:?} not logged {times} times:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The share of `frequency` in `audio` between `from` and `to` seconds of it: the median
/// over its 200 ms windows.
fn share_between(audio: &wav::Audio, frequency: f64, from: f64, to: f64) -> f64 {
    let windows = windows_of(audio, frequency);
    let first = ((from * 5.0).max(0.0) as usize).min(windows.len());
    let last = ((to * 5.0) as usize).clamp(first, windows.len());
    let mut shares: Vec<f64> = windows[first..last].iter().map(|(s, _)| *s).collect();
    assert!(
        shares.len() >= 5,
        "{from:.1}–{to:.1} s: only {} windows in a recording of {} windows",
        shares.len(),
        windows.len()
    );
    shares.sort_by(f64::total_cmp);
    shares[shares.len() / 2]
}

/// 1000 (600 Hz) talks with 1001 (1400 Hz); supervisor 1002 (2200 Hz) eavesdrops on 1000
/// (hears both, nobody hears it), then whispers to 1000 (only 1000 hears it), then joins
/// as a third party (both hear it). When 1000 hangs up, the supervisor's leg ends too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_eavesdrop_whisper_and_threeway_mix_the_right_audio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, server_log, listeners, api) = api_server(path).await;
    let sip = listeners["sip_udp"].clone();
    let (a, b, db) = pcmu_phones(path, &sip).await;
    let supervisor = tone_phone(path, &sip, "1002", 2200.0);
    wait_registered(&db, &[("1002", &supervisor)]).await;
    let logs = || {
        logs_of(
            &[("1000", &a), ("1001", &b), ("1002", &supervisor)],
            &server_log,
        )
    };
    let none = api.post(
        "/api/eavesdrop",
        r#"{"EvdedPhone":"1000","EvdPhone":"1002"}"#,
    );
    assert_eq!(none.status, 404, "1000 is in no call: {}", none.body);

    a.command("dial", &format!("sip:1001@{sip}"));
    until_call_state(&api, "1001", "talking", &logs);
    let talking_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gateway = api.post(
        "/api/whisper",
        r#"{"EvdedPhone":"1000","EvdPhone":"1002","EvdGateway":"carrier"}"#,
    );
    assert_eq!(gateway.status, 404, "no such gateway: {}", gateway.body);
    let party = api.post(
        "/api/threeway",
        r#"{"EvdedPhone":"1000","EvdPhone":"1001"}"#,
    );
    assert_eq!(party.status, 409, "{}", party.body);

    // Each mode for about four seconds: (start, end) since the call was answered.
    let mut phases = Vec::new();
    for (phase, endpoint) in ["eavesdrop", "whisper", "threeway"].into_iter().enumerate() {
        let join = api.post(
            &format!("/api/{endpoint}"),
            r#"{"EvdedPhone":"1000","EvdPhone":"1002","EvdGateway":""}"#,
        );
        assert_eq!(join.status, 200, "{endpoint}: {}", join.body);
        until_call_state(&api, "1002", "talking", &logs);
        let start = talking_since.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let end = talking_since.elapsed().as_secs_f64();
        phases.push((endpoint, start, end));
        if endpoint == "threeway" {
            // The call ends: the supervisor's leg ends with it.
            assert_eq!(api.get("/api/hangup/1000").status, 200);
        } else {
            let hangup = api.get("/api/hangup/1002");
            assert_eq!(hangup.status, 200, "{}", hangup.body);
            assert_eq!(
                api.get("/api/extension_info/1001").json()["data"]["CallState"],
                "talking",
                "the call goes on without the supervisor"
            );
        }
        until_call_state(&api, "1002", "ready", &logs);
        // The supervisor's phone has closed this call before the next one comes.
        until_logged(&supervisor, "session closed", phase + 1, &logs);
    }

    // The supervisor's three calls, in order: each carried both parties' tones.
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(&supervisor.dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .collect();
    recordings.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    assert_eq!(recordings.len(), 3, "three calls to 1002\n{}", logs());
    for (recording, (endpoint, _, _)) in recordings.iter().zip(&phases) {
        let audio = closed_recording(recording, &logs);
        let length = audio.samples.len() as f64 / f64::from(audio.sample_rate);
        for frequency in [600.0, 1400.0] {
            let share = share_between(&audio, frequency, 0.5, length - 0.5);
            assert!(
                share > 0.25,
                "{endpoint}: the supervisor hears {frequency} Hz: {share:.3}\n{}",
                logs()
            );
        }
    }
    // What the parties heard in each phase (a margin at both ends for set-up).
    let (heard_by_a, heard_by_b) = (a.received(), b.received());
    for (endpoint, start, end) in &phases {
        let (from, to) = (start + 0.8, end - 0.5);
        let a_hears = share_between(&heard_by_a, 2200.0, from, to);
        let b_hears = share_between(&heard_by_b, 2200.0, from, to);
        let (a_should, b_should) = match *endpoint {
            "eavesdrop" => (false, false),
            "whisper" => (true, false),
            _ => (true, true),
        };
        for (label, share, should) in [("1000", a_hears, a_should), ("1001", b_hears, b_should)] {
            assert!(
                if should { share > 0.2 } else { share < 0.02 },
                "{endpoint}: {label} hears the supervisor: {share:.3} (should: {should})\n{}",
                logs()
            );
        }
        let a_other = share_between(&heard_by_a, 1400.0, from, to);
        let b_other = share_between(&heard_by_b, 600.0, from, to);
        assert!(
            a_other > 0.2 && b_other > 0.2,
            "{endpoint}: the parties still hear each other: {a_other:.3} {b_other:.3}"
        );
    }
}

/// `park` and `bridge`: 1000 (600 Hz) and 1001 (1400 Hz) talk; parked, each hears music on
/// hold (425 Hz) instead of the other; `bridge` of their two legs joins them again. Then
/// 1002 (2200 Hz) calls 1003 (1000 Hz), and `bridge_phone` joins 1000 with 1002: they hear
/// each other, and their former partners 1001 and 1003 are hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_park_bridge_and_bridge_phone_move_real_audio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, server_log, listeners, api) = api_server(path).await;
    let sip = listeners["sip_udp"].clone();
    let (a, b, db) = pcmu_phones(path, &sip).await;
    let c = tone_phone(path, &sip, "1002", 2200.0);
    let d = tone_phone(path, &sip, "1003", 1000.0);
    wait_registered(&db, &[("1002", &c), ("1003", &d)]).await;
    let logs = || {
        logs_of(
            &[("1000", &a), ("1001", &b), ("1002", &c), ("1003", &d)],
            &server_log,
        )
    };
    a.command("dial", &format!("sip:1001@{sip}"));
    until_call_state(&api, "1001", "talking", &logs);
    let since = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let uuid = |phone: &str| {
        api.get(&format!("/api/get_phone_uuid/{phone}")).json()["data"]["uuid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a_leg, b_leg) = (uuid("1000"), uuid("1001"));

    let parked = api.get("/api/park/1000");
    assert_eq!(parked.status, 200, "{}", parked.body);
    assert_eq!(api.get("/api/park/1001").status, 409, "parked once");
    let park_start = since.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let park_end = since.elapsed().as_secs_f64();
    let body = serde_json::json!({"A_uuid": a_leg, "B_uuid": b_leg}).to_string();
    let joined = api.post("/api/bridge", &body);
    assert_eq!(joined.status, 200, "{}", joined.body);
    let join_start = since.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let join_end = since.elapsed().as_secs_f64();

    c.command("dial", &format!("sip:1003@{sip}"));
    until_call_state(&api, "1003", "talking", &logs);
    // 1002 has the 200 (and ACKs it) before its leg moves.
    until_logged(&c, "Call established", 1, &logs);
    let crossed = api.post(
        "/api/bridge_phone",
        r#"{"A_phone":" 1000","B_phone":"1002"}"#,
    );
    assert_eq!(crossed.status, 200, "{}", crossed.body);
    assert_eq!(crossed.json()["data"]["uuid"], a_leg.as_str());
    until_call_state(&api, "1001", "ready", &logs);
    until_call_state(&api, "1003", "ready", &logs);
    let cross_start = since.elapsed().as_secs_f64();
    let calls = api.get("/api/v1/calls").json()["data"].clone();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cross_end = since.elapsed().as_secs_f64();
    assert_eq!(api.get("/api/hangup/1002").status, 200);
    until_call_state(&api, "1000", "ready", &logs);
    // Both phones have had the BYE and closed their recordings.
    until_logged(&a, "session closed", 1, &logs);
    until_logged(&c, "session closed", 1, &logs);

    let heard = a.received();
    // Music on hold is 425 Hz, 0.5 s on (from when it starts), 3.5 s off: some of it, none
    // of 1001.
    let (from, to) = (park_start + 0.8, park_end - 0.3);
    let music = windows_of(&heard, 425.0)[(park_start * 5.0) as usize - 1..(from * 5.0) as usize]
        .iter()
        .map(|(share, _)| *share)
        .fold(0.0, f64::max);
    let partner = share_between(&heard, 1400.0, from, to);
    assert!(
        music > 0.5 && partner < 0.02,
        "parked: 1000 hears music ({music:.3}) and not 1001 ({partner:.3})\n{}",
        logs()
    );
    let checks = [
        ("bridged again", join_start, join_end, 1400.0),
        ("bridged to 1002", cross_start, cross_end, 2200.0),
    ];
    for (phase, start, end, hears) in checks {
        let share = share_between(&heard, hears, start + 0.8, end - 0.5);
        assert!(
            share > 0.5,
            "{phase}: 1000 hears {hears} Hz ({share:.3})\n{}",
            logs()
        );
    }
    let heard_by_c = c.received();
    let length = heard_by_c.samples.len() as f64 / f64::from(heard_by_c.sample_rate);
    let share = share_between(&heard_by_c, 600.0, length - 2.5, length - 0.5);
    assert!(
        share > 0.5,
        "1002 hears 1000 at the end: {share:.3}\n{}",
        logs()
    );
}

/// An API hold lasts until the API's unhold, whatever the other party does meanwhile: 1001
/// is held by the API, then 1000 puts the call on hold and resumes it from its own phone.
/// Until `unhold`, 1001 is sent nothing and 1000 hears music on hold; after it, each is
/// sent the other's audio again.
///
/// The platform's RTP counters of each leg (`/api/v1/calls/{uuid}`) tell what each phone is
/// sent: baresip records nothing more once a re-INVITE has put it on hold, so its recording
/// cannot tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_hold_outlasts_the_other_partys_own_hold_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, server_log, listeners, api) = api_server(path).await;
    let sip = listeners["sip_udp"].clone();
    let (a, b, _db) = pcmu_phones(path, &sip).await;
    let logs = || logs_of(&[("1000", &a), ("1001", &b)], &server_log);
    a.command("dial", &format!("sip:1001@{sip}"));
    until_call_state(&api, "1001", "talking", &logs);
    let caller_uuid = api.get("/api/get_phone_uuid/1000").json()["data"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = || api.get(&format!("/api/v1/calls/{caller_uuid}")).json()["data"].clone();
    // Waits until the caller's leg shows `held` (its own hold, by its re-INVITE).
    let until_caller_held = |held: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let call = call();
            if call["legs"][0]["held"] == held {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "1000's leg never became held={held}: {call}\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The packets sent to 1000 and to 1001 during 2 s.
    let sent_during_2s = || {
        let sent = |call: &serde_json::Value, leg: usize| {
            call["legs"][leg]["rtp"]["packets_sent"]
                .as_u64()
                .unwrap_or_else(|| panic!("no RTP counters: {call}"))
        };
        let before = call();
        std::thread::sleep(Duration::from_secs(2));
        let after = call();
        (
            sent(&after, 0) - sent(&before, 0),
            sent(&after, 1) - sent(&before, 1),
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (to_1000, to_1001) = sent_during_2s();
    assert!(
        to_1000 > 80 && to_1001 > 80,
        "talking: {to_1000} and {to_1001} packets in 2 s"
    );

    let hold = api.get("/api/hold/1001");
    assert_eq!(hold.status, 200, "{}", hold.body);
    a.command("hold", "");
    until_caller_held(true);
    a.command("resume", "");
    until_caller_held(false);
    let (to_1000, to_1001) = sent_during_2s();
    assert!(
        to_1000 > 80 && to_1001 <= 2,
        "1001 still held by the API after 1000's resume: 1000 is sent music ({to_1000} \
         packets in 2 s), 1001 nothing ({to_1001})\n{}",
        logs()
    );

    // The unhold waits for the hold's re-INVITE to 1001 to be over.
    let deadline = Instant::now() + Duration::from_secs(10);
    let unhold = loop {
        let answer = api.get("/api/unhold/1001");
        if !(answer.status == 409 && answer.body.contains("in progress"))
            || Instant::now() > deadline
        {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(unhold.status, 200, "{}\n{}", unhold.body, logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (to_1000, to_1001) = sent_during_2s();
    assert!(
        to_1000 > 80 && to_1001 > 80,
        "after the unhold: {to_1000} and {to_1001} packets in 2 s\n{}",
        logs()
    );
    assert_eq!(api.get("/api/hangup/1000").status, 200);
}
