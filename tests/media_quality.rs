//! Speech through the codecs, measured against independent tools, and DTMF talk-off.
//!
//! Quality: espeak-ng speaks a Mandarin and an English passage; each codec's round trip here
//! (the factory's encoder and decoder, 20 ms frames) and the same codec through an
//! independent implementation on the same input (Python's `audioop` for G.711, sox for GSM
//! and AMR-NB, ffmpeg for G.722 and Opus) are scored with PESQ (`scripts/pesq-score`)
//! against the original, and ours may be at most 0.1 below the reference. G.729 has no
//! independent encoder here: ffmpeg's decoder checks our decoder on our bitstream, and the
//! round trip must stay above a floor measured on this speech. The tandem Opus → PCMU →
//! G.729 must stay within 0.15 of the worst of its codecs alone. Synthetic speech scores
//! low in absolute terms (G.711 about 3.9): the test compares, it never holds a codec to
//! textbook MOS values.
//!
//! Talk-off: minutes of Mandarin and English speech, at a normal level and 6 dB louder,
//! straight and through PCMU, at several alignments of the detector's blocks, give the
//! in-band DTMF detector no digit; the 16 digits spliced into the same speech all come out,
//! in order.
//!
//! Every score is printed as a table (`-- --nocapture`). A missing tool fails the test with
//! its install command; nothing is skipped. What this does not test: pass-through relay,
//! which forwards packets unchanged (the media engine's tests check it bit for bit).
#![allow(clippy::disallowed_methods)] // runs real tools, on threads

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rswitch::media::dtmf::{self, DtmfDetector, ToneGenerator};
use rswitch::media::resample::Resampler;
use rswitch::media::wav::{self, Audio, WavWriter};
use rswitch_codecs::factory::{new_decoder, new_encoder};

/// How far ours may score below the independent reference (acceptance text).
const REFERENCE_MARGIN: f64 = 0.1;
/// How far PCMU → Opus (narrowband, as a bridge transcodes it) may score below PCMU alone:
/// the Opus leg must not be what a caller hears (measured: 0.03–0.05 below).
const NARROWBAND_OPUS_MARGIN: f64 = 0.1;

/// How far a tandem may score below the worst of its codecs alone (acceptance text).
const CHAIN_MARGIN: f64 = 0.15;
/// The lowest G.729 round trip allowed. bcg729 scores 2.40 on both passages (near GSM's
/// 2.4, below AMR-NB 12.2's 2.8: espeak's buzzy excitation suits CELP badly), and ffmpeg's
/// decoder scores our bitstream within 0.02 of that; a codec put together wrong (frames out
/// of step, a bitstream the decoder misreads, the wrong rate) scores far below 2.
const G729_FLOOR: f64 = 2.2;
/// PESQ of a file against itself is 4.55 (narrowband) and 4.64 (wideband); anything less
/// means the scorer or the files are wrong, and no other number can be trusted.
const IDENTITY_FLOOR: f64 = 4.5;

const TOOLS_HINT: &str = "apt-get install espeak-ng sox libsox-fmt-all ffmpeg (make test \
                          installs them)";
const PESQ_HINT: &str = "python3 -m pip install pesq numpy (make test installs them through \
                         scripts/ensure-python-packages)";

// ------------------------------------------------------------------------- quality

/// One passage to score: its espeak-ng voice and text (about 7 s spoken).
struct Language {
    name: &'static str,
    voice: &'static str,
    text: &'static str,
}

const LANGUAGES: [Language; 2] = [
    Language {
        name: "Mandarin",
        voice: "cmn",
        text: "今天天气很好，我们下午一起去公园散步吧。请在明天上午九点给我回电话。",
    },
    Language {
        name: "English",
        voice: "en-us",
        text: "The quick brown fox jumps over the lazy dog. Please call me back tomorrow \
               morning at nine, and bring the quarterly report with you.",
    },
];

/// The codecs with an independent reference. audioop's A-law is ours bit for bit; its µ-law
/// codes 381 of the 65,536 sample values (all negative, at segment edges and just below
/// zero) one step away from G.711's (it negates where G.711 takes the one's complement), too
/// little for PESQ to tell.
const REFERENCED: [(&str, Reference); 6] = [
    ("PCMU", Reference::Audioop("ulaw")),
    ("PCMA", Reference::Audioop("alaw")),
    ("GSM", Reference::Sox("gsm")),
    ("AMR", Reference::Sox("amr-nb")),
    ("G722", Reference::Ffmpeg("g722")),
    ("opus", Reference::Ffmpeg("opus")),
];

#[derive(Clone, Copy)]
enum Reference {
    /// Python's audioop, `lin2<law>` then `<law>2lin`.
    Audioop(&'static str),
    /// sox, writing the named file type and reading it back.
    Sox(&'static str),
    /// ffmpeg, encoding and decoding with the named codec.
    Ffmpeg(&'static str),
}

impl Reference {
    fn name(self) -> &'static str {
        match self {
            Reference::Audioop(_) => "audioop",
            Reference::Sox(_) => "sox",
            Reference::Ffmpeg("opus") => "ffmpeg libopus",
            Reference::Ffmpeg(_) => "ffmpeg",
        }
    }
}

/// One line of the score table.
struct Row {
    language: &'static str,
    what: String,
    mode: &'static str,
    ours: f64,
    /// The score compared with, and what it is.
    against: Option<(f64, String)>,
    /// The lowest `ours` may be, if anything is asked of it.
    limit: Option<f64>,
}

#[test]
fn codecs_score_within_a_tenth_of_independent_references_on_speech() {
    let tools = Tools::for_quality();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rows: Vec<Row> = std::thread::scope(|scope| {
        let handles: Vec<_> = LANGUAGES
            .iter()
            .map(|language| scope.spawn(|| measure(&tools, dir.path(), language)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a language's measurement panicked"))
            .collect()
    });
    println!("{}", table(&rows));
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let limit = row.limit?;
            (row.ours < limit).then(|| {
                format!(
                    "{} {}: {:.3} is below {limit:.3}",
                    row.language, row.what, row.ours
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every score for one language.
fn measure(tools: &Tools, dir: &Path, language: &Language) -> Vec<Row> {
    let stem = dir.join(language.voice);
    let file = |name: &str| stem.with_extension(name);
    let narrow = file("8k.wav");
    let wide = file("16k.wav");
    speak(
        tools,
        language.voice,
        language.text,
        &[(8000, &narrow), (16_000, &wide)],
    );
    let original = |rate| if rate == 8000 { &narrow } else { &wide };
    let mut batch = Batch::default();

    let identity = [8000, 16_000].map(|rate| (rate, batch.add(original(rate), original(rate))));

    let referenced: Vec<_> = REFERENCED
        .iter()
        .map(|&(codec, reference)| {
            let input = original(codec_rate(codec));
            let (ours, theirs) = (
                file(&format!("{codec}.ours.wav")),
                file(&format!("{codec}.ref.wav")),
            );
            write_wav(&ours, &round_trip(codec, &read_wav(input)));
            reference_round_trip(tools, reference, input, &theirs);
            (
                codec,
                reference,
                batch.add(input, &ours),
                batch.add(input, &theirs),
            )
        })
        .collect();

    // G.729: no independent encoder here, but ffmpeg has a decoder to check ours against on
    // the same bitstream (RFC 3551: the RTP payload is the 10-byte frames back to back, which
    // is also ffmpeg's raw G.729 format).
    let bitstream = encode("G729", &read_wav(&narrow));
    let (bits, g729_ours, g729_ffmpeg) = (
        file("G729.bit"),
        file("G729.ours.wav"),
        file("G729.ffmpeg.wav"),
    );
    std::fs::write(&bits, bitstream.concat()).expect("write the G.729 bitstream");
    write_wav(
        &g729_ours,
        &decode("G729", 8000, &bitstream, read_wav(&narrow).samples.len()),
    );
    run(tools
        .ffmpeg()
        .args(["-f", "g729", "-i"])
        .arg(&bits)
        .args(["-ar", "8000", "-ac", "1", "-c:a", "pcm_s16le"])
        .arg(&g729_ffmpeg));
    let g729 = (
        batch.add(&narrow, &g729_ours),
        batch.add(&narrow, &g729_ffmpeg),
    );

    // The tandem and each of its codecs alone, all scored in narrowband against the 8 kHz
    // original: the tandem leaves G.729 narrowband, so only P.862 narrowband can score it,
    // and P.862.2 wideband scores are on another scale (a narrowband codec scores far lower
    // there), so Opus's wideband score would not compare. Opus alone takes the path it takes
    // in the tandem (a 16 kHz leg, our resampler down to 8 kHz), so what separates the
    // tandem from the worst codec alone is the cost of coding in tandem.
    let opus = downsample(&round_trip("opus", &read_wav(&wide)));
    let chain = round_trip("G729", &round_trip("PCMU", &opus));
    let (opus_alone, chain_path) = (file("opus.nb.wav"), file("chain.wav"));
    write_wav(&opus_alone, &opus);
    write_wav(&chain_path, &chain);
    let opus_alone = batch.add(&narrow, &opus_alone);
    let chain = batch.add(&narrow, &chain_path);
    // PCMU → Opus as a bridge transcodes it: Opus encodes the 8 kHz audio at 8 kHz (at the
    // lower complexity rswitch uses for narrowband input). It must cost next to nothing on
    // top of PCMU alone.
    let pcmu_opus_path = file("pcmu-opus.wav");
    write_wav(
        &pcmu_opus_path,
        &round_trip("opus", &round_trip("PCMU", &read_wav(&narrow))),
    );
    let pcmu_opus = batch.add(&narrow, &pcmu_opus_path);

    let scores = batch.score();
    let row = |what: &str, mode, ours, against, limit| Row {
        language: language.name,
        what: what.into(),
        mode,
        ours,
        against,
        limit,
    };
    let mut rows = Vec::new();
    for (rate, id) in identity {
        rows.push(row(
            "original (scorer check)",
            mode(rate),
            scores[id],
            None,
            Some(IDENTITY_FLOOR),
        ));
    }
    let mut pcmu = None;
    for (codec, reference, ours, theirs) in referenced {
        let (ours, theirs) = (scores[ours], scores[theirs]);
        if codec == "PCMU" {
            pcmu = Some(ours);
        }
        rows.push(row(
            codec,
            mode(codec_rate(codec)),
            ours,
            Some((theirs, reference.name().into())),
            Some(theirs - REFERENCE_MARGIN),
        ));
    }
    let (g729, g729_ffmpeg) = (scores[g729.0], scores[g729.1]);
    rows.push(row(
        "G729 (no reference encoder)",
        "nb",
        g729,
        Some((g729_ffmpeg, "ffmpeg decoder, our bitstream".into())),
        Some((g729_ffmpeg - REFERENCE_MARGIN).max(G729_FLOOR)),
    ));
    let opus = scores[opus_alone];
    rows.push(row(
        "opus 16 kHz, resampled (alone)",
        "nb",
        opus,
        None,
        None,
    ));
    let pcmu_alone = pcmu.expect("PCMU is scored");
    rows.push(row(
        "PCMU > opus 8 kHz (bridge)",
        "nb",
        scores[pcmu_opus],
        Some((pcmu_alone, "PCMU alone".into())),
        Some(pcmu_alone - NARROWBAND_OPUS_MARGIN),
    ));
    let worst = [
        ("opus", opus),
        ("PCMU", pcmu.expect("PCMU is scored")),
        ("G729", g729),
    ]
    .into_iter()
    .min_by(|a, b| a.1.total_cmp(&b.1))
    .expect("three codecs");
    rows.push(row(
        "opus > PCMU > G729",
        "nb",
        scores[chain],
        Some((worst.1, format!("worst alone: {}", worst.0))),
        Some(worst.1 - CHAIN_MARGIN),
    ));
    rows
}

/// Pairs of files to score in one run of the scorer.
#[derive(Default)]
struct Batch {
    pairs: Vec<(PathBuf, PathBuf)>,
}

impl Batch {
    /// Adds the pair; its score will be at the returned index.
    fn add(&mut self, original: &Path, degraded: &Path) -> usize {
        self.pairs.push((original.to_owned(), degraded.to_owned()));
        self.pairs.len() - 1
    }

    /// PESQ of each pair, in order, from one scorer process.
    fn score(&self) -> Vec<f64> {
        let mut child = pesq_command()
            .arg("--batch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start scripts/pesq-score: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        for (original, degraded) in &self.pairs {
            writeln!(stdin, "{}\t{}", original.display(), degraded.display())
                .expect("write to scripts/pesq-score");
        }
        drop(stdin);
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let lines: Vec<String> = stdout.lines().map_while(Result::ok).collect();
        let out = child
            .wait_with_output()
            .expect("wait for scripts/pesq-score");
        assert!(
            out.status.success() && lines.len() == self.pairs.len(),
            "scripts/pesq-score failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        lines
            .iter()
            .map(|line| {
                line.parse()
                    .unwrap_or_else(|_| panic!("scripts/pesq-score printed {line:?}"))
            })
            .collect()
    }
}

/// The PCM rate a codec runs at here: G.722 and Opus wideband, the rest narrowband.
fn codec_rate(codec: &str) -> u32 {
    match codec {
        "G722" | "opus" => 16_000,
        _ => 8000,
    }
}

fn mode(rate: u32) -> &'static str {
    if rate == 8000 { "nb" } else { "wb" }
}

/// `audio` encoded and decoded 20 ms at a time by the factory's codec, as a call leg
/// would; the output is as long as the input. Nothing is trimmed for the codec's delay
/// (6.5 ms for Opus at 16 kHz, 5 ms for G.729): PESQ finds it, and the scores with the
/// delay cut off were checked to be the same to the third decimal.
fn round_trip(codec: &str, audio: &Audio) -> Audio {
    let payloads = encode(codec, audio);
    decode(codec, audio.sample_rate, &payloads, audio.samples.len())
}

/// The payloads of `audio`, one per 20 ms (the last frame padded with silence).
fn encode(codec: &str, audio: &Audio) -> Vec<Vec<u8>> {
    let rate = audio.sample_rate;
    let mut encoder = new_encoder(codec, None, rate)
        .unwrap_or_else(|e| panic!("no {codec} encoder at {rate} Hz: {e}"));
    assert_eq!(
        encoder.info().sample_rate,
        rate,
        "{codec} runs at its own rate"
    );
    let frame = rate as usize / 50;
    let mut padded = vec![0i16; frame];
    audio
        .samples
        .chunks(frame)
        .map(|chunk| {
            padded[..chunk.len()].copy_from_slice(chunk);
            padded[chunk.len()..].fill(0);
            let mut payload = Vec::new();
            encoder.encode(&padded, &mut payload);
            assert!(!payload.is_empty(), "{codec} encoded 20 ms to nothing");
            payload
        })
        .collect()
}

/// `payloads` (20 ms each) decoded, cut to `length` samples.
fn decode(codec: &str, rate: u32, payloads: &[Vec<u8>], length: usize) -> Audio {
    let mut decoder = new_decoder(codec, None, rate)
        .unwrap_or_else(|e| panic!("no {codec} decoder at {rate} Hz: {e}"));
    let frame = rate as usize / 50;
    let mut samples = Vec::with_capacity(payloads.len() * frame);
    for payload in payloads {
        let before = samples.len();
        decoder.decode(payload, &mut samples);
        assert_eq!(samples.len() - before, frame, "{codec} decoded 20 ms");
    }
    samples.truncate(length);
    Audio {
        sample_rate: rate,
        samples,
    }
}

/// 16 kHz audio at 8 kHz through the media engine's resampler, 20 ms at a time.
fn downsample(audio: &Audio) -> Audio {
    assert_eq!(audio.sample_rate, 16_000);
    let mut resampler = Resampler::new(16_000, 8000);
    let mut samples = Vec::with_capacity(audio.samples.len() / 2);
    for chunk in audio.samples.chunks(320) {
        resampler.process(chunk, &mut samples);
    }
    Audio {
        sample_rate: 8000,
        samples,
    }
}

/// The independent tool's round trip of `input` into `output` (a WAV at the input's rate).
fn reference_round_trip(tools: &Tools, reference: Reference, input: &Path, output: &Path) {
    match reference {
        Reference::Audioop(law) => {
            let script = format!(
                "import audioop, sys, wave\n\
                 with wave.open(sys.argv[1]) as f:\n    \
                     params, pcm = f.getparams(), f.readframes(f.getnframes())\n\
                 coded = audioop.lin2{law}(pcm, 2)\n\
                 with wave.open(sys.argv[2], 'wb') as f:\n    \
                     f.setparams(params)\n    \
                     f.writeframes(audioop.{law}2lin(coded, 2))\n"
            );
            run(Command::new(&tools.python)
                .args(["-W", "ignore::DeprecationWarning", "-c", &script])
                .args([input, output]));
        }
        Reference::Sox(kind) => {
            let coded = output.with_extension(kind);
            let mut encode = tools.sox();
            encode.arg(input);
            if kind == "amr-nb" {
                encode.args(["-C", "7"]); // mode 7: 12.2 kbit/s, what ours sends by default
            }
            run(encode.arg(&coded));
            run(tools.sox().arg(&coded).args(["-b", "16"]).arg(output));
        }
        Reference::Ffmpeg(codec) => {
            let (coded, encode, decode): (_, &[&str], &[&str]) = if codec == "opus" {
                // As ours: 24 kbit/s VBR, VoIP application, one 20 ms frame a packet.
                (
                    output.with_extension("ogg"),
                    &[
                        "-c:a",
                        "libopus",
                        "-b:a",
                        "24k",
                        "-vbr",
                        "on",
                        "-application",
                        "voip",
                        "-frame_duration",
                        "20",
                        "-f",
                        "ogg",
                    ],
                    &["-c:a", "libopus"],
                )
            } else {
                (
                    output.with_extension("g722"),
                    &["-c:a", "g722", "-f", "g722"],
                    &["-f", "g722"],
                )
            };
            run(tools.ffmpeg().arg("-i").arg(input).args(encode).arg(&coded));
            run(tools
                .ffmpeg()
                .args(decode)
                .arg("-i")
                .arg(&coded)
                .args(["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le"])
                .arg(output));
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "\nPESQ (nb: P.862 at 8 kHz, wb: P.862.2 at 16 kHz)\n\
         language | codec | mode | ours | compared with | difference | lowest allowed\n\
         ---|---|---|---|---|---|---\n",
    );
    for row in rows {
        let (against, difference) = match &row.against {
            Some((score, what)) => (
                format!("{score:.3} ({what})"),
                format!("{:+.3}", row.ours - score),
            ),
            None => (String::new(), String::new()),
        };
        let limit = row.limit.map_or(String::new(), |l| format!("{l:.3}"));
        writeln!(
            out,
            "{} | {} | {} | {:.3} | {against} | {difference} | {limit}",
            row.language, row.what, row.mode, row.ours
        )
        .expect("write to a String");
    }
    out
}

// ------------------------------------------------------------------------ talk-off

/// Paragraphs of the long passage, alternating the languages; each is spoken by every voice
/// of its language in turn, so pitch and rate vary across it.
const LONG_PASSAGE: [(&str, &str); 12] = [
    (
        "en",
        "Good morning, and thank you for calling the support line. All of our agents are busy \
         helping other customers right now. Please stay on the line and your call will be \
         answered in the order it was received. If you would rather leave a message, you can do \
         so at any time, and we will call you back before the end of the next working day.",
    ),
    (
        "cmn",
        "您好，欢迎致电客户服务中心。目前所有座席都在忙，请您耐心等待，您的来电将按顺序接听。\
         如果您希望留言，请在提示音后说出您的姓名和电话号码，我们会在下一个工作日之前给您回电。",
    ),
    (
        "en",
        "The meeting on Thursday has moved to room four hundred and twelve, on the fourth floor \
         of the east building. We will start at half past two and finish by five. Bring your \
         laptop, the budget figures for the third quarter, and any questions you have about the \
         new phone system.",
    ),
    (
        "cmn",
        "星期四的会议改在东楼四层四百一十二号会议室，下午两点半开始，五点之前结束。\
         请带上您的笔记本电脑、第三季度的预算数据，以及关于新电话系统的所有问题。",
    ),
    (
        "en",
        "Could you spell your surname for me, please? Was that B as in Bravo, or V as in \
         Victor? Thank you. And the account number, is it seven, three, eight, one, nine, zero, \
         two, six? I am sorry, the line is breaking up a little. Could you repeat the last four \
         digits more slowly?",
    ),
    (
        "cmn",
        "请问您的姓怎么写？是弓长张还是立早章？好的，谢谢。您的账号是七三八一九零二六吗？\
         对不起，信号不太好，请您把最后四位数字再慢慢说一遍。",
    ),
    (
        "en",
        "Yesterday evening the weather turned suddenly. Heavy rain swept across the valley, the \
         river rose over its banks near the old mill, and several roads were closed until the \
         early hours. Engineers expect the water to fall again by Sunday, but drivers are asked \
         to avoid the bridge for now.",
    ),
    (
        "cmn",
        "昨天晚上天气突然变了。大雨从山谷里下过来，老磨坊附近的河水漫过了河岸，\
         好几条路一直封到凌晨。工程师估计星期天水位会退下去，但现在还是请司机不要走那座桥。",
    ),
    (
        "en",
        "She sells sea shells by the sea shore. Peter Piper picked a peck of pickled peppers. \
         How much wood would a woodchuck chuck if a woodchuck could chuck wood? Whistling, \
         humming, singing: la la la, oh oh oh, ee ee ee, mmm, hello, hello, hello?",
    ),
    (
        "cmn",
        "吃葡萄不吐葡萄皮，不吃葡萄倒吐葡萄皮。四是四，十是十，十四是十四，四十是四十。\
         妈妈骂马，马慢，妈妈骂马慢。喂，喂，你好，听得见吗？",
    ),
    (
        "en",
        "To transfer a call, press the transfer key, dial the extension, and wait for the other \
         person to answer before you hang up. To park a call, dial star eight five. To pick up a \
         call that is ringing on a colleague's phone, dial star eight and the extension number.",
    ),
    (
        "cmn",
        "转接电话时，请按转接键，拨分机号码，等对方接听后再挂机。要停泊电话，请拨星号八五。\
         要代接同事电话机上正在响铃的来电，请拨星号八加上分机号码。",
    ),
];

/// espeak-ng voices with pitch (0–99) and words per minute: a low and a high voice each.
const VOICES: [(&str, &[[&str; 3]]); 2] = [
    ("en", &[["en-us", "40", "170"], ["en-us+f3", "75", "150"]]),
    ("cmn", &[["cmn", "45", "170"], ["cmn+f2", "80", "150"]]),
];

/// The shortest talk-off passage, in seconds.
const MIN_TALK_OFF_SECONDS: usize = 180;
/// Speech at a normal level: active speech at −20 dBm0 (0 dBm0 is an RMS of 16,099).
const NORMAL_LEVEL_RMS: f64 = 1610.0;
/// The levels the passage is heard at: normal, and 6 dB louder.
const LEVELS: [(&str, f64); 2] = [("normal, -20 dBm0", 0.0), ("loud, -14 dBm0", 6.0)];
/// Offsets of the detector's blocks against the speech: what a block holds decides what the
/// detector sees, and a call's audio may fall on the blocks anyhow.
const BLOCK_SHIFTS: [usize; 4] = [0, dtmf::BLOCK / 4, dtmf::BLOCK / 2, dtmf::BLOCK * 3 / 4];
const DIGITS: &str = "123A456B789C*0#D";
/// Each digit's tones: 100 ms, each tone at −20 dBm0.
const DIGIT_MS: usize = 100;
const DIGIT_LEVEL_DBM0: f64 = -20.0;

#[test]
fn minutes_of_speech_give_no_false_dtmf_digit() {
    let passage = long_passage();
    let mut report = format!(
        "\nDTMF talk-off: {:.1} min of Mandarin and English speech, blocks shifted by {:?} \
         samples\nlevel | path | samples clipped | digits detected\n---|---|---|---\n",
        passage.samples.len() as f64 / 8000.0 / 60.0,
        BLOCK_SHIFTS
    );
    let mut false_digits = Vec::new();
    for (level, gain_db) in LEVELS {
        let (audio, clipped) = amplified(&passage.samples, gain_db);
        for (path, heard) in [("linear", audio.clone()), ("PCMU", pcmu_round_trip(&audio))] {
            let mut count = 0;
            for shift in BLOCK_SHIFTS {
                let mut shifted = vec![0; shift];
                shifted.extend_from_slice(&heard);
                for (digit, at) in detect(&shifted) {
                    count += 1;
                    let at = at.saturating_sub(shift);
                    false_digits.push(format!(
                        "'{digit}' at {} of the passage, {} ({level}, {path}, blocks shifted \
                         by {shift} samples)",
                        timestamp(at),
                        passage.locate(at)
                    ));
                }
            }
            writeln!(report, "{level} | {path} | {clipped} | {count}").expect("write to a String");
        }
    }
    println!("{report}");
    assert!(
        false_digits.is_empty(),
        "speech was taken for DTMF:\n{}",
        false_digits.join("\n")
    );
}

#[test]
fn dtmf_digits_between_speech_are_all_detected_in_order() {
    let passage = long_passage();
    let speech = amplified(&passage.samples, 0.0).0;
    let tone_samples = DIGIT_MS * 8;
    // Digits replace the speech where they are sent, as a phone mutes its microphone while
    // it plays one; the speech runs right up to each tone and resumes right after it.
    let gap = speech.len() / (DIGITS.len() + 1);
    let mut mixed = Vec::with_capacity(speech.len() + DIGITS.len() * tone_samples);
    let mut sent = Vec::new();
    for (index, digit) in DIGITS.chars().enumerate() {
        mixed.extend_from_slice(&speech[index * gap..(index + 1) * gap]);
        sent.push((digit, mixed.len()));
        ToneGenerator::new(digit, DIGIT_LEVEL_DBM0, 8000)
            .expect("a DTMF digit")
            .fill(tone_samples, &mut mixed);
    }
    mixed.extend_from_slice(&speech[DIGITS.len() * gap..]);
    // Where a detected digit is: in the mixed audio, and in the passage when it is not one
    // that was sent.
    let describe = |&(digit, at): &(char, usize)| {
        let tones_before = sent.iter().filter(|&&(_, start)| start < at).count();
        let in_tone = sent
            .iter()
            .any(|&(_, start)| (start..start + tone_samples + 160).contains(&at));
        if in_tone {
            format!("{digit}@{}", timestamp(at))
        } else {
            let in_passage = at - tones_before * tone_samples;
            format!(
                "{digit}@{} (speech at {} of the passage, {})",
                timestamp(at),
                timestamp(in_passage),
                passage.locate(in_passage)
            )
        }
    };
    for (path, heard) in [("linear", mixed.clone()), ("PCMU", pcmu_round_trip(&mixed))] {
        let found = detect(&heard);
        let digits: String = found.iter().map(|&(digit, _)| digit).collect();
        let list = |l: &[(char, usize)]| l.iter().map(describe).collect::<Vec<_>>().join("\n  ");
        assert_eq!(
            digits,
            DIGITS,
            "{path}: sent\n  {}\nfound\n  {}",
            list(&sent),
            list(&found)
        );
        for (&(digit, sent_at), &(_, found_at)) in sent.iter().zip(&found) {
            assert!(
                (sent_at..sent_at + tone_samples).contains(&found_at),
                "{path}: '{digit}' sent at {} but found at {}",
                timestamp(sent_at),
                timestamp(found_at)
            );
        }
    }
}

/// The long passage at 8 kHz, and where each paragraph's reading starts in it.
struct Passage {
    samples: Vec<i16>,
    parts: Vec<Part>,
}

/// One paragraph as one voice read it.
struct Part {
    start: usize,
    paragraph: usize,
    voice: [&'static str; 3],
}

impl Passage {
    /// Which reading `at` falls in, for a report.
    fn locate(&self, at: usize) -> String {
        let part = self
            .parts
            .iter()
            .rev()
            .find(|part| part.start <= at)
            .expect("the first part starts at 0");
        let [voice, pitch, speed] = part.voice;
        format!(
            "{:.2} s into paragraph {} read by {voice} (pitch {pitch}, {speed} wpm)",
            (at - part.start) as f64 / 8000.0,
            part.paragraph + 1
        )
    }
}

/// The long passage, made once for every test that needs it.
fn long_passage() -> &'static Passage {
    static PASSAGE: OnceLock<Passage> = OnceLock::new();
    PASSAGE.get_or_init(|| {
        let speech = Speech::find();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut passage = Passage {
            samples: Vec::new(),
            parts: Vec::new(),
        };
        for (paragraph, (language, text)) in LONG_PASSAGE.iter().enumerate() {
            let (_, voices) = VOICES
                .iter()
                .find(|(name, _)| name == language)
                .expect("voices for every language");
            for &voice in voices.iter() {
                let path = dir.path().join(format!("{paragraph:02}-{}.wav", voice[0]));
                speech.say(voice, text, &[(8000, &path)]);
                passage.parts.push(Part {
                    start: passage.samples.len(),
                    paragraph,
                    voice,
                });
                passage.samples.extend(read_wav(&path).samples);
            }
        }
        assert!(
            passage.samples.len() >= MIN_TALK_OFF_SECONDS * 8000,
            "the passage is only {} s long",
            passage.samples.len() / 8000
        );
        passage
    })
}

/// `speech` scaled to the normal level, then by `gain_db`; with the count of samples that
/// clipped.
fn amplified(speech: &[i16], gain_db: f64) -> (Vec<i16>, usize) {
    let gain = NORMAL_LEVEL_RMS / active_rms(speech) * 10f64.powf(gain_db / 20.0);
    let mut clipped = 0;
    let samples = speech
        .iter()
        .map(|&s| {
            let value = f64::from(s) * gain;
            if value.abs() > 32_767.0 {
                clipped += 1;
            }
            value.clamp(-32_768.0, 32_767.0) as i16
        })
        .collect();
    (samples, clipped)
}

/// The RMS of the 20 ms frames that carry speech: those within 40 dB of the loudest (a
/// simple stand-in for ITU-T P.56's active speech level, which leaves the pauses out).
fn active_rms(samples: &[i16]) -> f64 {
    let frames: Vec<f64> = samples
        .chunks(160)
        .map(|frame| frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len() as f64)
        .collect();
    let loudest = frames.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = frames.into_iter().filter(|&p| p > loudest * 1e-4).collect();
    (active.iter().sum::<f64>() / active.len() as f64).sqrt()
}

fn pcmu_round_trip(samples: &[i16]) -> Vec<i16> {
    let audio = Audio {
        sample_rate: 8000,
        samples: samples.to_vec(),
    };
    round_trip("PCMU", &audio).samples
}

/// The digits the detector reports, fed 20 ms at a time, each with the offset of the frame
/// that completed it.
fn detect(samples: &[i16]) -> Vec<(char, usize)> {
    let mut detector = DtmfDetector::new();
    let mut found = Vec::new();
    let mut digits = Vec::new();
    for (index, frame) in samples.chunks(160).enumerate() {
        digits.clear();
        detector.push(frame, &mut digits);
        found.extend(digits.iter().map(|&digit| (digit, index * 160)));
    }
    found
}

/// A sample offset at 8 kHz as minutes, seconds and milliseconds.
fn timestamp(sample: usize) -> String {
    let ms = sample / 8;
    format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

// ------------------------------------------------------------------------- tools

/// What makes speech: espeak-ng and sox, found on `PATH`.
struct Speech {
    espeak: PathBuf,
    sox: PathBuf,
}

impl Speech {
    fn find() -> Speech {
        Speech {
            espeak: on_path("espeak-ng", TOOLS_HINT),
            sox: on_path("sox", TOOLS_HINT),
        }
    }

    /// sox without dither: by default it adds random noise when it writes 16-bit samples
    /// after processing them, and the scores would move from run to run.
    fn sox(&self) -> Command {
        let mut command = Command::new(&self.sox);
        command.arg("-D");
        command
    }

    /// espeak-ng reads `text` with `[voice, pitch, words per minute]`; sox writes it mono
    /// 16-bit at each output's rate, 3 dB down first (espeak's high voices come close to full
    /// scale, and the resampler's ripple would clip them).
    fn say(&self, [voice, pitch, speed]: [&str; 3], text: &str, outputs: &[(u32, &Path)]) {
        let spoken = outputs[0].1.with_extension("espeak.wav");
        run(Command::new(&self.espeak)
            .args(["-v", voice, "-p", pitch, "-s", speed, "-w"])
            .arg(&spoken)
            .arg(text));
        for &(rate, output) in outputs {
            run(self
                .sox()
                .arg(&spoken)
                .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
                .arg(output)
                .args(["gain", "-3"]));
        }
    }
}

/// Everything the quality test runs; missing pieces fail the test with the install hint.
struct Tools {
    speech: Speech,
    ffmpeg: PathBuf,
    python: PathBuf,
}

impl Tools {
    fn for_quality() -> Tools {
        let tools = Tools {
            speech: Speech::find(),
            ffmpeg: on_path("ffmpeg", TOOLS_HINT),
            python: on_path("python3", "apt-get install python3"),
        };
        let sox_formats = output(tools.sox().arg("-h"));
        for format in ["gsm", "amr-nb"] {
            assert!(
                sox_formats.split_whitespace().any(|word| word == format),
                "sox cannot read or write {format}: {TOOLS_HINT}"
            );
        }
        let encoders = output(tools.ffmpeg().arg("-encoders"));
        let decoders = output(tools.ffmpeg().arg("-decoders"));
        for (list, kind, codec) in [
            (&encoders, "encoder", "libopus"),
            (&encoders, "encoder", "g722"),
            (&decoders, "decoder", "g729"),
        ] {
            assert!(
                list.split_whitespace().any(|word| word == codec),
                "ffmpeg has no {codec} {kind}: {TOOLS_HINT}"
            );
        }
        let pesq = pesq_command()
            .arg("--check")
            .output()
            .expect("run scripts/pesq-score");
        assert!(
            pesq.status.success(),
            "PESQ is not available: {PESQ_HINT}\n({})",
            String::from_utf8_lossy(&pesq.stderr).trim()
        );
        let audioop = Command::new(&tools.python)
            .args(["-W", "ignore::DeprecationWarning", "-c", "import audioop"])
            .output()
            .expect("run python3");
        assert!(
            audioop.status.success(),
            "Python's audioop is missing (Python 3.13 removed it): python3 -m pip install \
             audioop-lts (make test installs it through scripts/ensure-python-packages)"
        );
        tools
    }

    fn sox(&self) -> Command {
        self.speech.sox()
    }

    fn ffmpeg(&self) -> Command {
        let mut command = Command::new(&self.ffmpeg);
        command.args(["-hide_banner", "-loglevel", "error", "-y"]);
        command
    }
}

fn speak(tools: &Tools, voice: &'static str, text: &str, outputs: &[(u32, &Path)]) {
    tools.speech.say([voice, "50", "175"], text, outputs);
}

fn on_path(program: &str, hint: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not installed: {hint}"))
}

/// `scripts/pesq-score`, run by the `python3` on `PATH`.
fn pesq_command() -> Command {
    let mut command = Command::new(on_path("python3", "apt-get install python3"));
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pesq-score"));
    command
}

/// Runs `command`; panics with its output if it fails.
fn run(command: &mut Command) {
    output(command);
}

/// What `command` wrote to stdout; panics with its stderr if it fails.
fn output(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_wav(path: &Path) -> Audio {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    wav::read(&bytes, 64 << 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_wav(path: &Path, audio: &Audio) {
    let file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut writer =
        WavWriter::new(std::io::BufWriter::new(file), audio.sample_rate, 1).expect("WAV header");
    writer.write(&audio.samples).expect("write WAV samples");
    writer.finish().expect("finish the WAV file");
}
