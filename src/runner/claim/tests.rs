//! The claim protocol under races: many threads, one winner.

use super::record::{encode, ClaimConfig, ClaimInfo, CLAIM_VERSION};
use super::*;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn owner(label: &str) -> Owner {
    Owner::this_process("run-1", label)
}

/// A claim written by hand, as another worker (or a dead one) would have left it, `age` old by its mtime.
fn plant(output: &Path, info: &ClaimInfo, age: Duration) {
    let path = claim_path(output).unwrap();
    std::fs::write(&path, encode(info, 0)).unwrap();
    let f = File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn foreign(pid: u32) -> ClaimInfo {
    ClaimInfo {
        version: CLAIM_VERSION,
        host: "other-node".into(),
        pid,
        boot_id: Some("another-boot".into()),
        pid_ns: Some("pid:[1]".into()),
        run: "run-0".into(),
        label: "slurm 7_1 worker 0".into(),
        token: format!("other-node-{pid:x}"),
        started: 1_700_000_000,
        heartbeat: 1_700_000_000,
    }
}

const QUIET: ClaimConfig = ClaimConfig { heartbeat: Duration::ZERO, stale_after: Duration::from_secs(40) };

fn leftovers(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn the_claim_is_a_hidden_file_beside_the_output() {
    assert_eq!(claim_path(Path::new("out/a.x2.mp4")).unwrap(), PathBuf::from("out/.a.x2.mp4.claim"));
    assert_eq!(
        claim_path(Path::new("/")).unwrap_err().to_string(),
        "/: an output path needs a file name to put a claim beside it"
    );
}

#[test]
fn a_held_claim_makes_others_skip_and_release_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    let Acquired::Claimed(guard) = try_acquire(&out, &owner("first"), &QUIET).unwrap() else { panic!() };
    let text = std::fs::read_to_string(claim_path(&out).unwrap()).unwrap();
    let info: ClaimInfo = serde_json::from_str(&text).unwrap();
    assert_eq!((info.label.as_str(), info.pid, info.run.as_str()), ("first", std::process::id(), "run-1"));
    match try_acquire(&out, &owner("second"), &QUIET).unwrap() {
        Acquired::Held(h) => {
            assert_eq!(h.info.unwrap().label, "first");
            assert!(!h.taking_over);
        }
        other => panic!("{other:?}"),
    }
    guard.check().unwrap();
    guard.release().unwrap();
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "no claim, temporary or marker left");
    assert!(matches!(try_acquire(&out, &owner("second"), &QUIET).unwrap(), Acquired::Claimed(_)));
    // Dropping the guard released it too.
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn threads_racing_for_one_file_exactly_one_wins_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let threads = 8;
    for round in 0..150 {
        let out = dir.path().join(format!("f{round}.mp4"));
        let barrier = Barrier::new(threads);
        let results: Vec<Acquired> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (out, barrier) = (&out, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        try_acquire(out, &owner(&format!("t{t}")), &QUIET).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&ClaimGuard> =
            results.iter().filter_map(|r| if let Acquired::Claimed(g) = r { Some(g) } else { None }).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(results.iter().filter(|r| matches!(r, Acquired::Held(_))).count(), threads - 1);
        winners[0].check().unwrap();
        drop(results);
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "round {round}");
    }
}

#[test]
fn a_silent_claim_is_taken_over_and_says_whose_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    plant(&out, &foreign(4242), Duration::from_secs(3600));
    match try_acquire(&out, &owner("thief"), &QUIET).unwrap() {
        Acquired::TakenOver(g, stale) => {
            assert_eq!(stale.reason, StaleReason::Silent);
            assert!(stale.age >= Duration::from_secs(3599), "{:?}", stale.age);
            let said = stale.to_string();
            assert!(
                said.starts_with("the claim of slurm 7_1 worker 0 on other-node (pid 4242, run run-0, claimed at 1700000000) had no heartbeat for 36"),
                "{said}"
            );
            assert_eq!(g.info().label, "thief");
            g.check().unwrap();
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_live_claim_of_another_host_is_held_whatever_its_heartbeat_field_says() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    // The JSON heartbeat is years old (a skewed clock), the file's modification time is fresh.
    plant(&out, &foreign(4242), Duration::ZERO);
    match try_acquire(&out, &owner("late"), &QUIET).unwrap() {
        Acquired::Held(h) => assert_eq!(h.info.unwrap().host, "other-node"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_dead_owner_on_this_host_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    let me = owner("me");
    let mut dead = foreign(0);
    (dead.host, dead.boot_id, dead.pid_ns) = (me.host.clone(), me.boot_id.clone(), me.pid_ns.clone());
    dead.pid = 4_194_304 + 17; // above any pid_max: no such process
    plant(&out, &dead, Duration::ZERO);
    match try_acquire(&out, &me, &QUIET).unwrap() {
        Acquired::TakenOver(_, stale) => {
            assert_eq!(stale.reason, StaleReason::OwnerDead);
            assert!(stale.to_string().ends_with("belongs to a process that no longer exists"), "{stale}");
        }
        other => panic!("{other:?}"),
    }
    // The same claim from another boot of this host name is not judged by its PID.
    let out = dir.path().join("b.mp4");
    dead.boot_id = Some("another-boot".into());
    plant(&out, &dead, Duration::ZERO);
    assert!(matches!(try_acquire(&out, &me, &QUIET).unwrap(), Acquired::Held(_)));
}

#[test]
fn racing_take_overs_of_one_stale_claim_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let threads = 8;
    for round in 0..100 {
        let out = dir.path().join(format!("f{round}.mp4"));
        plant(&out, &foreign(round), Duration::from_secs(600));
        let barrier = Barrier::new(threads);
        let results: Vec<Acquired> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (out, barrier) = (&out, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        try_acquire(out, &owner(&format!("t{t}")), &QUIET).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let taken: Vec<&ClaimGuard> =
            results.iter().filter_map(|r| if let Acquired::TakenOver(g, _) = r { Some(g) } else { None }).collect();
        assert_eq!(taken.len(), 1, "round {round}: {results:?}");
        assert!(results.iter().all(|r| !matches!(r, Acquired::Claimed(_))), "round {round}: {results:?}");
        taken[0].check().unwrap();
        drop(results);
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "round {round}");
    }
}

#[test]
fn the_heartbeat_keeps_a_claim_live_and_stops_when_released() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    let config = ClaimConfig { heartbeat: Duration::from_millis(40), stale_after: Duration::from_millis(250) };
    let Acquired::Claimed(guard) = try_acquire(&out, &owner("busy"), &config).unwrap() else { panic!() };
    let path = claim_path(&out).unwrap();
    let first = std::fs::metadata(&path).unwrap();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        match try_acquire(&out, &owner("other"), &config).unwrap() {
            Acquired::Held(h) => assert!(h.age < config.stale_after, "{h}"),
            other => panic!("a claim with a heartbeat was taken: {other:?}"),
        }
    }
    let later = std::fs::metadata(&path).unwrap();
    assert_eq!(later.ino(), first.ino(), "heartbeats rewrite the claim in place");
    assert!(later.modified().unwrap() > first.modified().unwrap());
    let info: ClaimInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(info.heartbeat >= info.started);
    assert!(!guard.is_lost());
    guard.release().unwrap();
    assert!(!path.exists());
}

#[test]
fn without_heartbeats_a_claim_goes_stale_and_its_old_owner_finds_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    let config = ClaimConfig { heartbeat: Duration::ZERO, stale_after: Duration::from_millis(100) };
    let Acquired::Claimed(old) = try_acquire(&out, &owner("stalled"), &config).unwrap() else { panic!() };
    std::thread::sleep(Duration::from_millis(250));
    let Acquired::TakenOver(new, stale) = try_acquire(&out, &owner("rescuer"), &config).unwrap() else { panic!() };
    assert_eq!(stale.info.unwrap().label, "stalled");
    // The old owner comes back: its claim is gone, it must abandon the file and leave the new claim alone.
    let lost = old.check().unwrap_err().to_string();
    assert!(
        lost.ends_with("a.mp4.claim: this worker's claim was taken over by rescuer on ")
            || lost.contains("taken over by rescuer on "),
        "{lost}"
    );
    assert!(old.is_lost());
    assert!(matches!(old.heartbeat(), Err(ClaimError::Lost { .. })));
    assert!(matches!(old.release(), Err(ClaimError::Lost { .. })));
    new.check().unwrap();
    assert_eq!(new.info().label, "rescuer");
    new.release().unwrap();
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn an_unreadable_claim_is_judged_by_its_age_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    let path = claim_path(&out).unwrap();
    std::fs::write(&path, b"").unwrap(); // made by exclusive create, content not written yet
    match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
        Acquired::Held(h) => {
            assert_eq!(h.info, None);
            assert!(h.to_string().starts_with("claimed by an unknown worker, heartbeat "), "{h}");
        }
        other => panic!("{other:?}"),
    }
    File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(99)).unwrap();
    match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
        Acquired::TakenOver(_, stale) => assert_eq!(stale.info, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_take_over_in_progress_is_respected_and_a_dead_takers_marker_is_not_forever() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mp4");
    plant(&out, &foreign(1), Duration::from_secs(600));
    let meta = std::fs::metadata(claim_path(&out).unwrap()).unwrap();
    let ns = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let marker =
        |g: u32| dir.path().join(format!(".a.mp4.claim.takeover-{:x}-{:x}-{ns:x}-{g}", meta.dev(), meta.ino()));
    std::fs::write(marker(0), b"").unwrap();
    match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
        Acquired::Held(h) => assert!(h.taking_over, "{h}"),
        other => panic!("{other:?}"),
    }
    // The taker died: its marker grows old, and the next generation decides.
    File::options()
        .write(true)
        .open(marker(0))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    assert!(matches!(try_acquire(&out, &owner("x"), &QUIET).unwrap(), Acquired::TakenOver(..)));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "markers are cleaned up");
}

#[test]
fn errors_read_well() {
    let lost = ClaimError::Lost { path: "out/.a.mp4.claim".into(), by: Some(Box::new(foreign(7))) };
    assert_eq!(
        lost.to_string(),
        "out/.a.mp4.claim: this worker's claim was taken over by slurm 7_1 worker 0 on other-node (pid 7, run run-0, claimed at 1700000000)"
    );
    let gone = ClaimError::Lost { path: "out/.a.mp4.claim".into(), by: None };
    assert_eq!(gone.to_string(), "out/.a.mp4.claim: this worker's claim was removed by another worker");
    assert_eq!(
        ClaimError::Contended("out/.a.mp4.claim".into()).to_string(),
        "out/.a.mp4.claim: the claim changed hands 8 times while this worker tried to acquire it"
    );
}
