//! Many processes' worth of connections racing on one state directory.

use std::sync::{Arc, Barrier};

use mlres_ledger::{Ledger, LedgerError, Usage};

use crate::common::req;

const THREADS: usize = 16;
const TRIES: usize = 5;
const MAX_JOBS: u32 = 10;

#[test]
fn concurrent_reservations_respect_the_cap() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = Arc::new(tmp.path().join("state"));
    let barrier = Arc::new(Barrier::new(THREADS));
    let campaign = Arc::new(std::sync::OnceLock::<String>::new());

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dir, barrier, campaign) = (dir.clone(), barrier.clone(), campaign.clone());
            std::thread::spawn(move || {
                // Every thread opens its own ledger at the same time on a fresh directory:
                // key creation, schema creation and WAL setup race too.
                let mut l = Ledger::open(&dir).expect("open");
                barrier.wait();
                if t == 0 {
                    let c = l.create_campaign("/p", "ph").expect("create");
                    campaign.set(c.id).unwrap();
                }
                barrier.wait();
                let cid = campaign.get().unwrap().clone();
                let mut ok = 0usize;
                let mut refused = 0usize;
                for _ in 0..TRIES {
                    let check = |u: &Usage| {
                        if u.jobs < MAX_JOBS {
                            Ok(())
                        } else {
                            Err(("max_jobs".to_string(), format!("{} jobs", u.jobs)))
                        }
                    };
                    match l.reserve(&cid, &req(None), check) {
                        Ok(_) => ok += 1,
                        Err(LedgerError::Refused { code, .. }) => {
                            assert_eq!(code, "max_jobs");
                            refused += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let results: Vec<(usize, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok: usize = results.iter().map(|r| r.0).sum();
    let refused: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(ok, MAX_JOBS as usize);
    assert_eq!(refused, THREADS * TRIES - MAX_JOBS as usize);

    let l = Ledger::open(&dir).unwrap();
    let cid = campaign.get().unwrap();
    let exps = l.experiments(cid).unwrap();
    assert_eq!(exps.len(), MAX_JOBS as usize);
    assert_eq!(
        exps.iter().map(|e| e.iter).collect::<Vec<_>>(),
        (1..=MAX_JOBS).collect::<Vec<_>>()
    );
    assert_eq!(l.usage(cid).unwrap().jobs, MAX_JOBS);
    assert_eq!(l.event_count().unwrap(), 1 + (THREADS * TRIES) as u64);
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.head_seq, 1 + (THREADS * TRIES) as u64);
}

#[test]
fn verify_is_clean_while_others_write() {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = Arc::new(tmp.path().join("state"));
    Ledger::open(&dir).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || {
                let mut l = Ledger::open(&dir).unwrap();
                for i in 0..EACH {
                    l.append_event(None, "tick", &serde_json::json!({"w": w, "i": i}))
                        .unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    let reader = {
        let (dir, done) = (dir.clone(), done.clone());
        std::thread::spawn(move || {
            let l = Ledger::open(&dir).unwrap();
            let mut runs = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                let r = l.verify().unwrap();
                assert!(r.is_ok(), "verify during writes: {r:?}");
                runs += 1;
                if finished {
                    return (runs, r.events);
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    let (runs, events) = reader.join().unwrap();
    assert!(runs >= 1);
    assert_eq!(events, (WRITERS * EACH) as u64);
}
