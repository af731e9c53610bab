//! [`Communicator`]: one rank of an HCCL communicator, its constructors
//! (all ranks in this process, or one rank joining through a
//! [`RootInfo`]) and its release.
//!
//! Invariants:
//! - `handle` is a live `HcclComm` owned by this value alone, of rank
//!   `rank` among `size` ranks on `ctx`'s device (both read back from
//!   HCCL at creation); it is destroyed exactly once, in `Drop`.
//! - `ctx` (an `Arc`) keeps the device set up for as long as the
//!   communicator exists.
//! - `streams` holds every stream a collective of this rank was queued on;
//!   `Drop` waits for the work queued on them so far before destroying the
//!   communicator, so HCCL never loses a communicator that queued work
//!   still uses. Failures there are recorded in the context, as for every
//!   RAII type of this crate.
//! - The type is `Send` (each rank can be driven from its own thread) but
//!   not `Sync`: HCCL matches the k-th collective of every rank, so one
//!   rank's calls must come in one order, which shared use from several
//!   threads could not promise.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use ascend_sys::HcclComm;

use super::root_info::RootInfo;
use crate::context::Context;
use crate::device::Device;
use crate::error::{Error, HcclCode, Result};
use crate::result::hccl as raw;
use crate::stream::Stream;

/// One rank of an HCCL communicator.
#[derive(Debug)]
pub struct Communicator {
    pub(super) handle: HcclComm,
    pub(super) rank: usize,
    pub(super) size: usize,
    pub(super) ctx: Arc<Context>,
    pub(super) streams: Mutex<Vec<Arc<Stream>>>,
    /// Not `Sync` (see the module documentation).
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: an HcclComm may be used from any thread as long as calls on it
// are not concurrent; `Communicator` is not `Sync`, so only the thread that
// owns it calls HCCL with the handle. The context and streams are Send.
unsafe impl Send for Communicator {}

impl Communicator {
    /// One communicator per device, all in this process
    /// (`HcclCommInitAll`): rank `i` on `devices[i]`. Each rank gets the
    /// device's default context ([`Context::new`]), shared with other
    /// users of that context; make its streams and buffers from
    /// [`Communicator::context`]. The devices must be distinct.
    pub fn init_all(devices: &[Device]) -> Result<Vec<Communicator>> {
        let contexts = devices
            .iter()
            .map(|d| Context::new(d.ordinal()))
            .collect::<Result<Vec<_>>>()?;
        Communicator::init_all_in(&contexts)
    }

    /// As [`Communicator::init_all`], with the context of each rank given:
    /// rank `i` lives on `contexts[i]`'s device.
    pub fn init_all_in(contexts: &[Arc<Context>]) -> Result<Vec<Communicator>> {
        const API: &str = "Communicator::init_all";
        if contexts.is_empty() {
            return Err(Error::invalid(API, "no devices given"));
        }
        let mut seen = BTreeSet::new();
        for c in contexts {
            if !seen.insert(c.ordinal()) {
                return Err(Error::invalid(
                    API,
                    format!(
                        "{} is given twice; every rank needs its own device",
                        c.device()
                    ),
                ));
            }
        }
        for c in contexts {
            c.check_err()?;
        }
        contexts[0].bind_to_thread()?;
        let mut ids: Vec<i32> = contexts.iter().map(|c| c.ordinal()).collect();
        let handles = raw::comm_init_all(&mut ids)?;
        // Own every handle first, so that an error below destroys them all.
        let mut comms: Vec<Communicator> = handles
            .into_iter()
            .zip(contexts)
            .map(|(h, c)| Communicator::own(h, c))
            .collect();
        for comm in &mut comms {
            comm.read_rank()?;
        }
        comms.sort_by_key(|c| c.rank);
        let n = comms.len();
        for (i, c) in comms.iter().enumerate() {
            if c.size != n || c.rank != i {
                return Err(Error::invalid(
                    API,
                    format!(
                        "HCCL reports rank {} of {} for {}, expected rank {i} of {n}",
                        c.rank,
                        c.size,
                        c.device()
                    ),
                ));
            }
        }
        Ok(comms)
    }

    /// Joins rank `rank` of an `n_ranks`-rank communicator on `ctx`'s
    /// device (`HcclCommInitRootInfo`), `root` being the [`RootInfo`] that
    /// rank 0 made with [`RootInfo::new`] and sent to everyone. Blocks until
    /// every rank has joined (or HCCL's timeout passes), so call it from
    /// one thread (or process) per rank.
    pub fn init_rank(
        root: &RootInfo,
        n_ranks: usize,
        rank: usize,
        ctx: &Arc<Context>,
    ) -> Result<Communicator> {
        const API: &str = "Communicator::init_rank";
        if n_ranks == 0 {
            return Err(Error::invalid(
                API,
                "a communicator needs at least one rank",
            ));
        }
        if rank >= n_ranks {
            return Err(Error::invalid(
                API,
                format!("rank {rank} is not below the rank count {n_ranks}"),
            ));
        }
        let n = u32::try_from(n_ranks)
            .map_err(|_| Error::invalid(API, format!("{n_ranks} ranks do not fit in u32")))?;
        // rank < n_ranks <= u32::MAX.
        let r = rank as u32;
        ctx.bind_to_thread()?;
        let handle = raw::comm_init_root_info(n, &root.to_raw(), r)?;
        let mut comm = Communicator::own(handle, ctx);
        comm.read_rank()?;
        if comm.rank != rank || comm.size != n_ranks {
            return Err(Error::invalid(
                API,
                format!(
                    "HCCL reports rank {} of {}, asked for rank {rank} of {n_ranks}",
                    comm.rank, comm.size
                ),
            ));
        }
        Ok(comm)
    }

    fn own(handle: HcclComm, ctx: &Arc<Context>) -> Communicator {
        Communicator {
            handle,
            rank: 0,
            size: 0,
            ctx: ctx.clone(),
            streams: Mutex::new(Vec::new()),
            _not_sync: PhantomData,
        }
    }

    /// Reads the rank and the rank count from HCCL.
    fn read_rank(&mut self) -> Result<()> {
        self.ctx.bind()?;
        // SAFETY: the handle is live (owned by self).
        let size = unsafe { raw::rank_size(self.handle) }?;
        // SAFETY: as above.
        let rank = unsafe { raw::rank_id(self.handle) }?;
        self.size = size as usize;
        self.rank = rank as usize;
        Ok(())
    }

    /// This rank's number, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The device this rank lives on.
    pub fn device(&self) -> Device {
        self.ctx.device()
    }

    /// The context of this rank: make its streams and buffers here.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The raw handle, for calls this crate does not wrap. Work queued
    /// with it is outside the access tracker.
    pub fn handle(&self) -> HcclComm {
        self.handle
    }

    /// The communicator's name (`HcclGetCommName`), the same on every rank.
    pub fn name(&self) -> Result<String> {
        self.ctx.bind_to_thread()?;
        // SAFETY: the handle is live (owned by self).
        unsafe { raw::comm_name(self.handle) }
    }

    /// The first asynchronous failure of this rank's queued collectives
    /// (`HcclGetCommAsyncError`), if any. A collective that fails on the
    /// device shows up as an AscendCL error at the next synchronization;
    /// this gives HCCL's code for it (for example `HCCL_E_TIMEOUT`).
    pub fn async_error(&self) -> Result<Option<HcclCode>> {
        self.ctx.bind_to_thread()?;
        // SAFETY: the handle is live (owned by self).
        let code = unsafe { raw::comm_async_error(self.handle) }?;
        Ok((code != ascend_sys::HCCL_SUCCESS).then(|| HcclCode::from_raw(code)))
    }

    /// Destroys the communicator now, returning any error (which `Drop`
    /// would only record in the context). Waits for the collectives this
    /// rank queued first.
    pub fn destroy(mut self) -> Result<()> {
        self.release()
    }

    /// Remembers a stream a collective is about to be queued on.
    pub(super) fn remember(&self, stream: &Arc<Stream>) {
        let mut v = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if !v.iter().any(|s| s.id() == stream.id()) {
            v.push(stream.clone());
        }
    }

    fn release(&mut self) -> Result<()> {
        if self.handle.is_null() {
            return Ok(());
        }
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|p| p.into_inner()));
        let mut first: Result<()> = Ok(());
        for s in &streams {
            let r = s.sync_point();
            if first.is_ok() {
                first = r;
            }
        }
        let handle = std::mem::replace(&mut self.handle, std::ptr::null_mut());
        // The handle goes even when waiting failed: the failed work has
        // ended either way, and keeping the handle would only leak it.
        let destroyed = self.ctx.bind().and_then(|()| {
            // SAFETY: the handle is live and never used again (now null).
            unsafe { raw::comm_destroy(handle) }
        });
        first.and(destroyed)
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        let r = self.release();
        self.ctx.record_result(r);
    }
}
