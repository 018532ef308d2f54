//! Staging a stream's rows: lateness judged against the watermark as it stood before the
//! write, rows appended to the log, and, for rows read by an external source, each part's
//! position, event time and dead letters.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::util::display::array_value_to_string;
use eddy_catalog::Relation;
use eddy_connectors::SourceBatch;
use eddy_dataflow::Delta;
use eddy_dataflow::progress::{DeadLetterRecord, LateRow, Progress};
use eddy_dataflow::{codec, relations};
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::keys;

use super::{Driver, Epoch, Written, check_not_null};

/// One batch of a stream's rows judged against its watermark.
struct Judged {
    kept: RecordBatch,
    late: u64,
    /// The largest event time among the rows kept.
    largest: Option<i64>,
}

impl Driver {
    /// Stages rows appended to a stream: late ones dropped, the rest appended to its log
    /// (unless its source can replay them) and recorded as the stream's change.
    pub(super) fn stage_append(
        &mut self,
        epoch: &mut Epoch,
        rel: &Relation,
        rows: &[RecordBatch],
        log: bool,
    ) -> SqlResult<Written> {
        // Rows of a statement planned before the stream gained columns.
        let widened: Vec<RecordBatch>;
        let rows = match rows.iter().any(|b| b.num_columns() < rel.columns.len()) {
            true => {
                let schema = rel.schema();
                widened = rows
                    .iter()
                    .map(|b| codec::widened(b, &schema))
                    .collect::<Result<_, _>>()?;
                &widened[..]
            }
            false => rows,
        };
        for batch in rows {
            check_not_null(rel, batch)?;
        }
        let mut progress = self.progress_of(rel.id)?;
        let (rows, late) = match rel.watermark {
            Some(wm) => {
                let before = progress.watermark;
                let mut kept = Vec::with_capacity(rows.len());
                let mut late = 0;
                let mut largest = None;
                for batch in rows {
                    let judged = self.judge_late(rel, batch, before, &mut progress, epoch)?;
                    late += judged.late;
                    largest = largest.max(judged.largest);
                    kept.push(judged.kept);
                }
                progress.watermark =
                    eddy_dataflow::progress::advance(before, largest, wm.delay_micros);
                (kept, late)
            }
            None => (rows.to_vec(), 0),
        };
        self.stage_rows(epoch, rel, rows, progress, log, late)
    }

    /// Stages what a stream's source read: each part's rows judged against the watermark as
    /// it stood before, appended to the log; the parts' positions and event times, the
    /// watermark they allow, and the records the source could not read.
    pub(super) fn stage_ingest(
        &mut self,
        epoch: &mut Epoch,
        rel: &Relation,
        batch: &SourceBatch,
    ) -> SqlResult<Written> {
        let mut progress = self.progress_of(rel.id)?;
        for part in &batch.parts {
            if let Some(p) = progress.parts.get(&part.part)
                && p.offset != part.from
            {
                // A reader that lost track (a retried read after a failure): refused, so that
                // no record is applied twice or skipped.
                return Err(SqlError::Internal(format!(
                    "stream \"{}\": part {} read from {} but {} is committed",
                    rel.name, part.part, part.from, p.offset
                )));
            }
            check_not_null(rel, &part.rows)?;
        }
        let before = progress.watermark;
        let mut rows = Vec::with_capacity(batch.parts.len());
        let mut late = 0;
        for part in &batch.parts {
            let (kept, largest) = match rel.watermark {
                Some(_) => {
                    let judged = self.judge_late(rel, &part.rows, before, &mut progress, epoch)?;
                    late += judged.late;
                    (judged.kept, judged.largest)
                }
                None => (part.rows.clone(), None),
            };
            rows.push(kept);
            let p = progress.parts.entry(part.part.clone()).or_default();
            p.offset = part.to;
            p.max_event_time = p.max_event_time.max(largest);
        }
        for (name, p) in progress.parts.iter_mut() {
            p.idle = batch.idle.contains(name);
        }
        if let Some(wm) = rel.watermark {
            progress.watermark =
                eddy_dataflow::progress::parts_watermark(before, &progress.parts, wm.delay_micros);
        }
        let dead = batch.dead_letters.len() as u64;
        for (i, letter) in batch.dead_letters.iter().enumerate() {
            let seq = progress.dead_letters + i as u64;
            let record = DeadLetterRecord {
                epoch: self.epoch + 1,
                position: letter.position.clone(),
                payload: letter.payload.clone(),
                error: letter.error.clone(),
            };
            epoch
                .batch
                .put(keys::dead_letter(rel.id, seq), record.encode());
            if let Some(old) = seq.checked_sub(self.late_rows_kept) {
                epoch.batch.delete(keys::dead_letter(rel.id, old));
            }
        }
        progress.dead_letters += dead;
        progress.source_error = None;
        let mut written = self.stage_rows(epoch, rel, rows, progress, true, late)?;
        written.dead = dead;
        Ok(written)
    }

    /// Stages a stream's accepted rows: appended to its log (unless its source can replay
    /// them), counted, and recorded as the stream's change.
    fn stage_rows(
        &mut self,
        epoch: &mut Epoch,
        rel: &Relation,
        rows: Vec<RecordBatch>,
        mut progress: Progress,
        log: bool,
        late: u64,
    ) -> SqlResult<Written> {
        let n: usize = rows.iter().map(RecordBatch::num_rows).sum();
        if log && n > 0 {
            let first = self.next_seq(rel.id)?;
            for (seq, block) in relations::encode_log_blocks(&rows, first)? {
                epoch
                    .batch
                    .put(keys::row(rel.id, &seq.to_be_bytes()), block);
            }
            self.next_seq.insert(rel.id, first + n as u64);
        }
        progress.rows += n as u64;
        progress.epoch = self.epoch + 1;
        self.progress.insert(rel.id, progress);
        epoch.progressed.insert(rel.id);
        let changes = epoch.changes.entry(rel.id).or_default();
        changes.extend(
            rows.into_iter()
                .filter(|b| b.num_rows() > 0)
                .map(Delta::inserts),
        );
        Ok(Written {
            rows: n as u64,
            late,
            dead: 0,
        })
    }

    /// The rows of one batch written to a stream with a watermark that are on time against
    /// the watermark `before` the write; the late ones are recorded (and counted in
    /// `progress`) instead.
    fn judge_late(
        &self,
        rel: &Relation,
        batch: &RecordBatch,
        before: Option<i64>,
        progress: &mut Progress,
        epoch: &mut Epoch,
    ) -> SqlResult<Judged> {
        let wm = rel.watermark.expect("a stream with a watermark");
        let times = batch
            .column(wm.column)
            .as_primitive::<TimestampMicrosecondType>();
        let (on_time, largest) = eddy_dataflow::progress::on_time(times, before);
        let mut late = 0u64;
        let late_at = match on_time.true_count() == batch.num_rows() {
            true => 0..0,
            false => 0..batch.num_rows(),
        };
        for i in late_at {
            if on_time.value(i) {
                continue;
            }
            let row = (0..batch.num_columns())
                .map(|c| array_value_to_string(batch.column(c), i))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ");
            let record = LateRow {
                epoch: self.epoch + 1,
                event_time: times.is_valid(i).then(|| times.value(i)),
                watermark: before,
                row: format!("({row})"),
            };
            let seq = progress.late_rows;
            epoch
                .batch
                .put(keys::late_row(rel.id, seq), record.encode());
            if let Some(old) = seq.checked_sub(self.late_rows_kept) {
                epoch.batch.delete(keys::late_row(rel.id, old));
            }
            progress.late_rows += 1;
            late += 1;
        }
        let kept = match late {
            0 => batch.clone(),
            _ => arrow::compute::filter_record_batch(batch, &on_time)?,
        };
        Ok(Judged {
            kept,
            late,
            largest,
        })
    }
}
