//! Documents → bulk request bodies: NDJSON action + source pairs appended to one buffer and
//! cut into [`Batch`]es by document count and bytes. Each batch remembers where every
//! document's pair lies, so a retry of some items re-sends slices of the same bytes instead
//! of serialising documents again.

use bytes::Bytes;

/// One document's action + source lines inside a batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItem {
    pub id: i64,
    pub start: usize,
    pub end: usize,
}

/// A bulk request body and where each document's pair lies in it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: Bytes,
    pub items: Vec<BatchItem>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A new batch holding only the items at `positions` (for retrying failed items).
    pub fn subset(&self, positions: &[usize]) -> Batch {
        let bytes: usize = positions
            .iter()
            .map(|&p| self.items[p].end - self.items[p].start)
            .sum();
        let mut body = Vec::with_capacity(bytes);
        let mut items = Vec::with_capacity(positions.len());
        for &p in positions {
            let item = self.items[p];
            let start = body.len();
            body.extend_from_slice(&self.body[item.start..item.end]);
            items.push(BatchItem {
                id: item.id,
                start,
                end: body.len(),
            });
        }
        Batch {
            body: Bytes::from(body),
            items,
        }
    }
}

/// Accumulates NDJSON pairs and cuts a batch at `max_docs` documents or before the pair
/// that would take it past `max_bytes` (a single larger document goes alone).
#[derive(Debug)]
pub struct BatchBuilder {
    max_docs: usize,
    max_bytes: usize,
    buf: Vec<u8>,
    items: Vec<BatchItem>,
}

impl BatchBuilder {
    pub fn new(max_docs: usize, max_bytes: usize) -> Self {
        BatchBuilder {
            max_docs: max_docs.max(1),
            max_bytes: max_bytes.max(1),
            buf: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Appends one document with `write_pair`, which must append exactly its two NDJSON
    /// lines (and leave the buffer unchanged on error). Returns a batch when one is full.
    pub fn push<E>(
        &mut self,
        id: i64,
        write_pair: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Batch>, E> {
        let start = self.buf.len();
        write_pair(&mut self.buf)?;
        let end = self.buf.len();
        let mut full = None;
        if !self.items.is_empty() && end > self.max_bytes {
            // This pair would overflow the batch: ship what came before, keep it for the next.
            let tail = self.buf.split_off(start);
            full = Some(self.take());
            self.buf = tail;
            self.items.push(BatchItem {
                id,
                start: 0,
                end: self.buf.len(),
            });
        } else {
            self.items.push(BatchItem { id, start, end });
        }
        if full.is_none() && (self.items.len() >= self.max_docs || self.buf.len() >= self.max_bytes)
        {
            full = Some(self.take());
        }
        Ok(full)
    }

    /// The documents gathered so far, if any.
    pub fn finish(&mut self) -> Option<Batch> {
        (!self.items.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.buf.reserve(body.len().min(self.max_bytes));
        Batch {
            body,
            items: std::mem::take(&mut self.items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(id: i64, pad: usize) -> impl FnOnce(&mut Vec<u8>) -> Result<(), ()> {
        move |out: &mut Vec<u8>| {
            out.extend_from_slice(
                format!(
                    "{{\"index\":{{\"_id\":\"{id}\"}}}}\n{{\"p\":\"{}\"}}\n",
                    "x".repeat(pad)
                )
                .as_bytes(),
            );
            Ok(())
        }
    }

    #[test]
    fn cuts_at_doc_count() {
        let mut b = BatchBuilder::new(3, 1 << 20);
        assert!(b.push(1, pair(1, 1)).unwrap().is_none());
        assert!(b.push(2, pair(2, 1)).unwrap().is_none());
        let batch = b
            .push(3, pair(3, 1))
            .unwrap()
            .expect("third doc fills the batch");
        assert_eq!(
            batch.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(b.finish().is_none());
    }

    #[test]
    fn cuts_before_the_pair_that_overflows_bytes() {
        let mut b = BatchBuilder::new(100, 200);
        assert!(b.push(1, pair(1, 60)).unwrap().is_none());
        assert!(b.push(2, pair(2, 60)).unwrap().is_none());
        let batch = b
            .push(3, pair(3, 60))
            .unwrap()
            .expect("third pair overflows");
        assert_eq!(batch.len(), 2);
        assert!(batch.body.len() <= 200);
        let rest = b.finish().expect("third doc kept");
        assert_eq!(
            rest.items,
            vec![BatchItem {
                id: 3,
                start: 0,
                end: rest.body.len()
            }]
        );
        assert!(rest.body.starts_with(b"{\"index\":{\"_id\":\"3\"}}\n"));
    }

    #[test]
    fn a_single_huge_document_goes_alone() {
        let mut b = BatchBuilder::new(100, 50);
        let batch = b.push(1, pair(1, 500)).unwrap().expect("alone");
        assert_eq!(batch.len(), 1);
        assert!(b.finish().is_none());
    }

    #[test]
    fn writer_error_leaves_builder_unchanged() {
        let mut b = BatchBuilder::new(10, 1000);
        b.push(1, pair(1, 1)).unwrap();
        assert!(matches!(
            b.push(2, |_: &mut Vec<u8>| Err("bad")),
            Err("bad")
        ));
        assert_eq!(b.finish().map(|x| x.len()), Some(1));
    }

    proptest! {
        /// Whatever the limits and sizes, batches hold every pair once, in order, byte for
        /// byte, and never exceed a limit unless one document alone does.
        #[test]
        fn batches_partition_the_stream(sizes in proptest::collection::vec(0usize..300, 0..200),
                                        max_docs in 1usize..50, max_bytes in 1usize..2000) {
            let mut b = BatchBuilder::new(max_docs, max_bytes);
            let mut expected = Vec::new();
            let mut batches = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let mut one = Vec::new();
                pair(i as i64, size)(&mut one).unwrap();
                expected.extend_from_slice(&one);
                if let Some(batch) = b.push(i as i64, pair(i as i64, size)).unwrap() { batches.push(batch); }
            }
            if let Some(batch) = b.finish() { batches.push(batch); }
            let mut joined = Vec::new();
            let mut ids = Vec::new();
            for batch in &batches {
                prop_assert!(batch.len() <= max_docs);
                prop_assert!(batch.body.len() <= max_bytes || batch.len() == 1);
                for item in &batch.items {
                    joined.extend_from_slice(&batch.body[item.start..item.end]);
                    ids.push(item.id);
                }
                prop_assert_eq!(batch.items.last().map(|i| i.end), Some(batch.body.len()));
            }
            prop_assert_eq!(joined, expected);
            prop_assert_eq!(ids, (0..sizes.len() as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn subset_keeps_selected_pairs() {
        let mut b = BatchBuilder::new(10, 1 << 20);
        for id in 1..=4 {
            b.push(id, pair(id, 3)).unwrap();
        }
        let batch = b.finish().unwrap();
        let sub = batch.subset(&[1, 3]);
        assert_eq!(
            sub.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![2, 4]
        );
        let text = std::str::from_utf8(&sub.body).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.starts_with("{\"index\":{\"_id\":\"2\"}}\n"));
        assert!(text.contains("{\"index\":{\"_id\":\"4\"}}\n"));
    }
}
