//! Journal entries from async tasks: run mode's supervisor, join and
//! readiness tasks hand entries to a queue, and a thread of its own writes
//! and syncs each one, so that a slow disk never stalls a runtime worker
//! (of which there are two).

use std::sync::mpsc;
use std::thread::JoinHandle;

use super::{Entry, Journal, JournalError};

/// Where async code records entries: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub(crate) struct JournalQueue {
    sender: mpsc::Sender<Entry>,
}

/// The thread draining a [`JournalQueue`].
#[derive(Debug)]
pub(crate) struct JournalWriter {
    thread: JoinHandle<()>,
}

impl Journal {
    /// A queue onto this journal and the thread that drains it. The thread
    /// ends once every clone of the queue is dropped; [`JournalWriter::finish`]
    /// waits for that.
    pub(crate) fn queue(&self) -> Result<(JournalQueue, JournalWriter), JournalError> {
        let (sender, entries) = mpsc::channel::<Entry>();
        let journal = self.clone();
        let thread = std::thread::Builder::new()
            .name("plinth-journal".to_owned())
            .spawn(move || {
                for entry in entries {
                    if let Err(error) = journal.record(entry).and_then(|()| journal.sync()) {
                        tracing::warn!(
                            error = %crate::terminal::error_line(&error),
                            "cannot write the journal"
                        );
                    }
                }
            })
            .map_err(JournalError::Writer)?;
        Ok((JournalQueue { sender }, JournalWriter { thread }))
    }
}

impl JournalQueue {
    pub(crate) fn record(&self, entry: Entry) {
        if self.sender.send(entry).is_err() {
            tracing::warn!("the journal's writer has stopped; an entry is lost");
        }
    }
}

impl JournalWriter {
    /// Wait until every queued entry is written and synced. Call it once no
    /// clone of the queue is left, or it waits for ever.
    pub(crate) fn finish(self) {
        if self.thread.join().is_err() {
            tracing::warn!("the journal's writer panicked; its last entries may be lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::DataDir;
    use crate::journal::Verdict;
    use crate::phase::Phase;

    #[test]
    fn entries_queued_from_many_threads_are_all_written_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::lock(dir.path()).unwrap();
        let journal = Journal::open(&data_dir).unwrap();
        let (queue, writer) = journal.queue().unwrap();
        std::thread::scope(|scope| {
            for thread in 0..3 {
                let queue = queue.clone();
                scope.spawn(move || {
                    for n in 0..20 {
                        queue.record(
                            Entry::new(Phase::Etcd, format!("t{thread}"), Verdict::Event)
                                .detail(serde_json::json!({ "n": n })),
                        );
                    }
                });
            }
        });
        drop(queue);
        writer.finish();
        let text = std::fs::read_to_string(data_dir.journal_file()).unwrap();
        assert_eq!(text.lines().count(), 60);
    }
}
