//! What a download needs from its peer, in one value that threads can share: the
//! console downloads through it on its own thread, the HTTP interface's background
//! downloads ([`super::jobs`]) on theirs.

use super::catalog::SharedFile;
use super::download::{self, DownloadError, DownloadOutcome, DownloadRequest, Progress};
use super::finder::Finder;
use super::links::{LinkCommand, Publisher};
use super::pool::IndexPool;
use super::{PeerConfig, PeerShared};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Downloader {
    pub(super) shared: Arc<PeerShared>,
    pub(super) config: PeerConfig,
    pub(super) pool: IndexPool,
    /// Where holders come from: the indexes, and the DHT beside them.
    pub(super) finder: Finder,
    /// Where a finished download is published to the indexes.
    pub(super) publisher: Option<Publisher>,
}

impl Downloader {
    pub fn pool(&self) -> &IndexPool {
        &self.pool
    }

    /// Downloads into the shared folder, then shares the file onward. A file nobody
    /// gave a content id for is quarantined in the state dir (never shared) unless
    /// `allow_unverified`; `verify_sha1` also checks the whole-file SHA-1 (see
    /// [`DownloadRequest::verify_sha1`]).
    pub fn download(
        &self,
        name: FileName,
        id: Option<Sha1Digest>,
        allow_unverified: bool,
        verify_sha1: bool,
        progress: &dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<DownloadOutcome, DownloadError> {
        let existing = self
            .shared
            .catalog()
            .get(name.as_str())
            .map(|f| f.hashes.id);
        let req = DownloadRequest {
            name: name.clone(),
            id,
            dest_dir: &self.config.dir,
            state_dir: &self.config.state_dir,
            existing,
            self_id: self.shared.id.as_str(),
            timeouts: self.config.timeouts,
            max_sources: self.config.max_sources,
            download_limit: self.config.download_limit.clone(),
            allow_unverified,
            max_unverified_size: self.config.max_unverified_size,
            verify_sha1,
            direct_io: !self.config.page_cache,
        };
        let outcome = download::download(&self.pool, &self.finder, &req, progress, cancel)?;
        if let DownloadOutcome::Downloaded(done) = &outcome {
            self.shared.downloads.fetch_add(1, Ordering::Relaxed);
            self.shared
                .bytes_downloaded
                .fetch_add(done.hashes.size, Ordering::Relaxed);
            let file = SharedFile {
                name,
                path: done
                    .path
                    .canonicalize()
                    .unwrap_or_else(|_| done.path.clone()),
                stamp: done.stamp,
                hashes: done.hashes.clone(),
            };
            self.shared.catalog_mut().insert(file.clone());
            if let Some(p) = &self.publisher {
                p.send(LinkCommand::Publish(vec![file]));
            }
        }
        Ok(outcome)
    }
}
