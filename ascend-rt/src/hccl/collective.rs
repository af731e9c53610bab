//! The typed collectives of a [`Communicator`]: all-reduce, broadcast,
//! reduce, all-gather, reduce-scatter, scatter, all-to-all (even and
//! per-peer counts), send, receive, a paired send/receive, and the
//! barrier.
//!
//! Every method, before any FFI call:
//! - checks that the stream and every buffer are on this rank's device,
//!   that counts agree with the buffers (the formulas are on each method),
//!   that roots and peers are ranks (and peers not this rank), and that the
//!   reduction is supported for the element type ([`ReduceOp::supports`]);
//!   a failure is [`Error::InvalidArgument`] and nothing is queued;
//! - binds the stream's context to the calling thread (HCCL wants the
//!   rank's device current), then declares the accesses to the access
//!   tracker: buffers read on `stream` (send buffers) and buffers written
//!   (receive buffers; the buffer of a broadcast on every rank, root
//!   included; a buffer a non-root rank passes to reduce or scatter,
//!   though HCCL does not use it there), so that other streams, the host
//!   and `Drop` are ordered against the collective as for any copy.
//!
//! A failing HCCL call is [`Error::Hccl`] with the function's name, the
//! `HcclResult` and `HcclGetErrorString`'s text. A collective that fails
//! later on the device (a peer that never joins, say) shows up as an
//! AscendCL error at the next synchronization of the stream;
//! [`Communicator::async_error`] then gives HCCL's code.

use std::sync::Arc;

use ascend_sys::{HCCL_RECV, HCCL_SEND, HcclSendRecvItem};

use super::ReduceOp;
use super::comm::Communicator;
use super::view::{IntoView, IntoViewMut, View, ViewMut};
use crate::error::{Error, Result};
use crate::memory::{DeviceBuffer, DeviceRepr};
use crate::result::hccl::{self as raw, VArrays};
use crate::stream::Stream;

/// A count as HCCL's `uint64_t`.
fn count64(n: usize) -> u64 {
    // usize is at most 64 bits on every target AscendCL exists for.
    n as u64
}

impl Communicator {
    /// Fails unless `stream` runs on this rank's device.
    fn check_stream(&self, api: &'static str, stream: &Stream) -> Result<()> {
        if stream.context().ordinal() == self.ctx.ordinal() {
            Ok(())
        } else {
            Err(Error::invalid(
                api,
                format!(
                    "the stream runs on {} but rank {} lives on {}",
                    stream.context().device(),
                    self.rank,
                    self.device()
                ),
            ))
        }
    }

    /// Fails unless the buffer `what` lives on this rank's device.
    fn check_buffer<T: DeviceRepr>(
        &self,
        api: &'static str,
        what: &str,
        buf: &DeviceBuffer<T>,
    ) -> Result<()> {
        if buf.context().ordinal() == self.ctx.ordinal() {
            Ok(())
        } else {
            Err(Error::invalid(
                api,
                format!(
                    "the {what} buffer is on {} but rank {} lives on {}",
                    buf.device(),
                    self.rank,
                    self.device()
                ),
            ))
        }
    }

    /// Fails unless `peer` is another rank of this communicator.
    fn check_peer(&self, api: &'static str, what: &str, peer: usize) -> Result<()> {
        if peer >= self.size {
            return Err(Error::invalid(
                api,
                format!(
                    "{what} {peer} is not a rank of this {}-rank communicator",
                    self.size
                ),
            ));
        }
        if peer == self.rank {
            return Err(Error::invalid(
                api,
                format!("{what} {peer} is this rank itself"),
            ));
        }
        Ok(())
    }

    /// Fails unless `root` is a rank of this communicator.
    fn check_root(&self, api: &'static str, root: usize) -> Result<()> {
        if root < self.size {
            return Ok(());
        }
        Err(Error::invalid(
            api,
            format!(
                "root {root} is not a rank of this {}-rank communicator",
                self.size
            ),
        ))
    }

    /// `a * self.size`, or an error naming `what` on overflow.
    fn times_size(&self, api: &'static str, what: &str, a: usize) -> Result<usize> {
        a.checked_mul(self.size).ok_or_else(|| {
            Error::invalid(
                api,
                format!("{what} of {a} elements times {} ranks overflows", self.size),
            )
        })
    }

    /// The steps after the checks: surface recorded errors, bind the
    /// stream's context, remember the stream for `Drop`.
    /// [`Self::check_stream`], then [`Self::check_buffer`] for a send and a
    /// receive buffer.
    fn check_pair<T: DeviceRepr>(
        &self,
        api: &'static str,
        stream: &Stream,
        send: &DeviceBuffer<T>,
        recv: &DeviceBuffer<T>,
    ) -> Result<()> {
        self.check_stream(api, stream)?;
        self.check_buffer(api, "send", send)?;
        self.check_buffer(api, "receive", recv)
    }

    fn begin(&self, stream: &Arc<Stream>) -> Result<()> {
        self.ctx.check_err()?;
        stream.context().bind_to_thread()?;
        self.remember(stream);
        Ok(())
    }

    /// All-reduce (`HcclAllReduce`): every rank's `recv` gets the
    /// element-wise `op` of all ranks' `send`. Needs
    /// `send.len() == recv.len()`, the same on every rank.
    pub fn all_reduce<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        recv: impl IntoViewMut<'b, Elem = T>,
        op: ReduceOp,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_reduce";
        let send = send.into_view();
        let mut recv = recv.into_view_mut();
        self.check_pair(API, stream, send.buffer(), recv.buffer())?;
        op.check::<T>(API)?;
        if send.len() != recv.len() {
            return Err(Error::invalid(
                API,
                format!(
                    "send has {} elements but receive {}; all-reduce needs equal counts",
                    send.len(),
                    recv.len()
                ),
            ));
        }
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        // Views are checked; `&`/`&mut` borrows make the buffers distinct.
        // SAFETY: both ranges lie in live buffers of this device; the tracker
        // orders the collective after earlier uses and keeps them alive.
        unsafe {
            raw::all_reduce(
                s,
                r,
                count64(send.len()),
                T::DTYPE.hccl(),
                op.raw(),
                self.handle,
                stream.handle(),
            )
        }
    }

    /// All-reduce in place: `buf` is both the input and the result.
    pub fn all_reduce_in_place<'a, T: DeviceRepr>(
        &self,
        buf: impl IntoViewMut<'a, Elem = T>,
        op: ReduceOp,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_reduce_in_place";
        let mut buf = buf.into_view_mut();
        self.check_stream(API, stream)?;
        self.check_buffer(API, "in-place", buf.buffer())?;
        op.check::<T>(API)?;
        self.begin(stream)?;
        let p = buf.track(stream)?;
        // SAFETY: as in all_reduce; HCCL allows sendBuf == recvBuf, and the
        // write declared to the tracker covers the read.
        unsafe {
            raw::all_reduce(
                p,
                p,
                count64(buf.len()),
                T::DTYPE.hccl(),
                op.raw(),
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Broadcast (`HcclBroadcast`): `buf` of rank `root` is copied into
    /// `buf` of every other rank. Every rank passes a buffer of the same
    /// length; it is declared written on every rank (the root's is only
    /// read, but ordering it as a write is never less safe).
    pub fn broadcast<'a, T: DeviceRepr>(
        &self,
        buf: impl IntoViewMut<'a, Elem = T>,
        root: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::broadcast";
        let mut buf = buf.into_view_mut();
        self.check_stream(API, stream)?;
        self.check_buffer(API, "broadcast", buf.buffer())?;
        self.check_root(API, root)?;
        self.begin(stream)?;
        let p = buf.track(stream)?;
        // SAFETY: the range lies inside a live buffer of this device; the
        // tracker orders the broadcast after every earlier use and keeps the
        // buffer alive; root < size fits u32 since size came from HCCL.
        unsafe {
            raw::broadcast(
                p,
                count64(buf.len()),
                T::DTYPE.hccl(),
                root as u32,
                self.handle,
                stream.handle(),
            )
        }
    }

    /// All-gather (`HcclAllGather`): `recv` of every rank gets the `send`
    /// of rank 0, then rank 1, ... Needs
    /// `recv.len() == send.len() * size()`.
    pub fn all_gather<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        recv: impl IntoViewMut<'b, Elem = T>,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_gather";
        let send = send.into_view();
        let mut recv = recv.into_view_mut();
        self.check_pair(API, stream, send.buffer(), recv.buffer())?;
        let want = self.times_size(API, "send", send.len())?;
        if recv.len() != want {
            return Err(Error::invalid(
                API,
                format!(
                    "receive has {} elements but all-gather of {} elements over {} ranks needs {want}",
                    recv.len(),
                    send.len(),
                    self.size
                ),
            ));
        }
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        // SAFETY: as in all_reduce, with `recv` holding send * size
        // elements (checked above).
        unsafe {
            raw::all_gather(
                s,
                r,
                count64(send.len()),
                T::DTYPE.hccl(),
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Reduce-scatter (`HcclReduceScatter`): the element-wise `op` of all
    /// ranks' `send` is split in `size()` equal parts, part `r` going to
    /// rank `r`'s `recv`. Needs `send.len() == recv.len() * size()`.
    pub fn reduce_scatter<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        recv: impl IntoViewMut<'b, Elem = T>,
        op: ReduceOp,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::reduce_scatter";
        let send = send.into_view();
        let mut recv = recv.into_view_mut();
        self.check_pair(API, stream, send.buffer(), recv.buffer())?;
        op.check::<T>(API)?;
        let want = self.times_size(API, "receive", recv.len())?;
        if send.len() != want {
            return Err(Error::invalid(
                API,
                format!(
                    "send has {} elements but reduce-scatter into {} elements over {} ranks needs {want}",
                    send.len(),
                    recv.len(),
                    self.size
                ),
            ));
        }
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        // SAFETY: as in all_reduce, with `send` holding recv * size
        // elements (checked above).
        unsafe {
            raw::reduce_scatter(
                s,
                r,
                count64(recv.len()),
                T::DTYPE.hccl(),
                op.raw(),
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Reduce (`HcclReduce`): `recv` of rank `root` gets the element-wise
    /// `op` of all ranks' `send`. Every rank passes `send`, of the same
    /// length on every rank.
    ///
    /// `recv` is required on the root (`Some`, with `recv.len() ==
    /// send.len()`) and optional elsewhere: a non-root rank passes `None`
    /// (HCCL gets a null `recvBuf`, which it does not use there) or a
    /// buffer of the same length, handed to HCCL and declared written,
    /// since CANN documents `recvBuf` as the output of every rank without
    /// saying what a non-root rank's receives (the mock leaves it as it
    /// was). Pass `Some` on every rank if a CANN version refuses the null
    /// pointer: the refusal is an [`Error::Hccl`] at the call, nothing is
    /// queued.
    ///
    /// A whole buffer is `Some((&mut buf).into())`; a range is
    /// `Some(ViewMut::prefix(&mut buf, n)?)`.
    pub fn reduce<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        recv: Option<ViewMut<'b, T>>,
        op: ReduceOp,
        root: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::reduce";
        let send = send.into_view();
        let mut recv = recv;
        self.check_stream(API, stream)?;
        self.check_buffer(API, "send", send.buffer())?;
        self.check_root(API, root)?;
        op.check::<T>(API)?;
        match &recv {
            None if root == self.rank => {
                return Err(Error::invalid(
                    API,
                    format!(
                        "rank {root} is the root and must pass the receive buffer for the {} reduced elements",
                        send.len()
                    ),
                ));
            }
            None => {}
            Some(r) => {
                self.check_buffer(API, "receive", r.buffer())?;
                if r.len() != send.len() {
                    return Err(Error::invalid(
                        API,
                        format!(
                            "send has {} elements but receive {}; reduce needs equal counts",
                            send.len(),
                            r.len()
                        ),
                    ));
                }
            }
        }
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = match &mut recv {
            Some(r) => r.track(stream)?,
            None => std::ptr::null_mut(),
        };
        // The checks above: `send` and a given `recv` lie in live buffers of
        // this device, send.len() elements each (`&`/`&mut` make them
        // distinct); root < size, which came from HCCL as a u32.
        // SAFETY: as just said; a null `recv` only reaches HCCL on a
        // non-root rank, which does not use it; the tracker orders the
        // collective after earlier uses and keeps both buffers alive.
        unsafe {
            raw::reduce(
                s,
                r,
                count64(send.len()),
                T::DTYPE.hccl(),
                op.raw(),
                root as u32,
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Scatter (`HcclScatter`): `send` of rank `root` is split in `size()`
    /// equal parts, part `r` going to rank `r`'s `recv`. Every rank passes
    /// `recv`, of the same length on every rank.
    ///
    /// `send` is required on the root (`Some`, with `send.len() ==
    /// recv.len() * size()`) and optional elsewhere: a non-root rank passes
    /// `None` (HCCL gets a null `sendBuf`, which it does not read there)
    /// or a buffer of that same length, handed to HCCL and declared read.
    ///
    /// A whole buffer is `Some((&buf).into())`; a range is
    /// `Some(View::prefix(&buf, n)?)`.
    pub fn scatter<'a, 'b, T: DeviceRepr>(
        &self,
        send: Option<View<'a, T>>,
        recv: impl IntoViewMut<'b, Elem = T>,
        root: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::scatter";
        let mut recv = recv.into_view_mut();
        self.check_stream(API, stream)?;
        self.check_buffer(API, "receive", recv.buffer())?;
        self.check_root(API, root)?;
        let want = self.times_size(API, "receive", recv.len())?;
        match &send {
            None if root == self.rank => {
                return Err(Error::invalid(
                    API,
                    format!(
                        "rank {root} is the root and must pass the send buffer of the {want} scattered elements"
                    ),
                ));
            }
            None => {}
            Some(s) => {
                self.check_buffer(API, "send", s.buffer())?;
                if s.len() != want {
                    return Err(Error::invalid(
                        API,
                        format!(
                            "send has {} elements but scatter into {} elements over {} ranks needs {want}",
                            s.len(),
                            recv.len(),
                            self.size
                        ),
                    ));
                }
            }
        }
        self.begin(stream)?;
        let s = match &send {
            Some(s) => s.track(stream)?,
            None => std::ptr::null(),
        };
        let r = recv.track(stream)?;
        // The checks above: `recv` and a given `send` lie in live buffers of
        // this device, `send` holding recv * size elements; root < size.
        // SAFETY: as just said; a null `send` only reaches HCCL on a
        // non-root rank, which does not read it; the tracker orders the
        // collective after earlier uses and keeps both buffers alive.
        unsafe {
            raw::scatter(
                s,
                r,
                count64(recv.len()),
                T::DTYPE.hccl(),
                root as u32,
                self.handle,
                stream.handle(),
            )
        }
    }

    /// All-to-all with equal parts (`HcclAlltoAll`): `send` is split in
    /// `size()` equal parts, part `r` going to rank `r`; `recv` gets rank
    /// `r`'s part for this rank at part `r`. Needs
    /// `send.len() == recv.len()`, a multiple of `size()`.
    pub fn all_to_all<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        recv: impl IntoViewMut<'b, Elem = T>,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_to_all";
        let send = send.into_view();
        let mut recv = recv.into_view_mut();
        self.check_pair(API, stream, send.buffer(), recv.buffer())?;
        if send.len() != recv.len() || send.len() % self.size != 0 {
            return Err(Error::invalid(
                API,
                format!(
                    "send has {} and receive {} elements; all-to-all needs equal lengths that are a multiple of the {} ranks",
                    send.len(),
                    recv.len(),
                    self.size
                ),
            ));
        }
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        // SAFETY: as in all_reduce; both hold size parts of len / size.
        unsafe {
            raw::all_to_all(
                s,
                r,
                count64(send.len() / self.size),
                T::DTYPE.hccl(),
                self.handle,
                stream.handle(),
            )
        }
    }

    /// All-to-all with per-peer counts (`HcclAlltoAllV`), parts packed in
    /// rank order: `send_counts[r]` elements go to rank `r`, starting after
    /// the parts for ranks `0..r`; `recv_counts[r]` elements come from rank
    /// `r`, placed the same way. Both arrays have `size()` entries and
    /// their sums must fit in the buffers (the rest of the buffers is not
    /// touched). Counts may be zero. `send_counts[r]` on this rank must
    /// equal `recv_counts[this rank]` on rank `r`, which only the peers
    /// know: HCCL (or the mock) checks that when the collective runs.
    pub fn all_to_all_v<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        send_counts: &[usize],
        recv: impl IntoViewMut<'b, Elem = T>,
        recv_counts: &[usize],
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_to_all_v";
        self.check_counts(API, "send_counts", send_counts)?;
        self.check_counts(API, "recv_counts", recv_counts)?;
        let sdispls = prefix_sums(API, "send_counts", send_counts)?;
        let rdispls = prefix_sums(API, "recv_counts", recv_counts)?;
        self.all_to_all_v_inner(
            API,
            send.into_view(),
            send_counts,
            &sdispls,
            recv.into_view_mut(),
            recv_counts,
            &rdispls,
            stream,
        )
    }

    /// All-to-all with per-peer counts and explicit displacements: the
    /// part for rank `r` is `send[sdispls[r]..][..send_counts[r]]`, the
    /// part from rank `r` lands in `recv[rdispls[r]..][..recv_counts[r]]`.
    /// Every part must lie inside its buffer, and the receive parts must
    /// not overlap (each would be written by another rank).
    #[allow(clippy::too_many_arguments)]
    pub fn all_to_all_v_with_displs<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        send_counts: &[usize],
        sdispls: &[usize],
        recv: impl IntoViewMut<'b, Elem = T>,
        recv_counts: &[usize],
        rdispls: &[usize],
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::all_to_all_v_with_displs";
        for (what, a) in [
            ("send_counts", send_counts),
            ("sdispls", sdispls),
            ("recv_counts", recv_counts),
            ("rdispls", rdispls),
        ] {
            self.check_counts(API, what, a)?;
        }
        self.all_to_all_v_inner(
            API,
            send.into_view(),
            send_counts,
            sdispls,
            recv.into_view_mut(),
            recv_counts,
            rdispls,
            stream,
        )
    }

    /// Fails unless the per-rank array `what` has `size()` entries.
    fn check_counts(&self, api: &'static str, what: &str, a: &[usize]) -> Result<()> {
        if a.len() == self.size {
            Ok(())
        } else {
            Err(Error::invalid(
                api,
                format!(
                    "{what} has {} entries but the communicator has {} ranks",
                    a.len(),
                    self.size
                ),
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn all_to_all_v_inner<T: DeviceRepr>(
        &self,
        api: &'static str,
        send: super::View<'_, T>,
        send_counts: &[usize],
        sdispls: &[usize],
        mut recv: super::ViewMut<'_, T>,
        recv_counts: &[usize],
        rdispls: &[usize],
        stream: &Arc<Stream>,
    ) -> Result<()> {
        self.check_stream(api, stream)?;
        self.check_buffer(api, "send", send.buffer())?;
        self.check_buffer(api, "receive", recv.buffer())?;
        check_parts(api, "send", send_counts, sdispls, send.len())?;
        check_parts(api, "receive", recv_counts, rdispls, recv.len())?;
        check_disjoint(api, recv_counts, rdispls)?;
        let to64 = |a: &[usize]| a.iter().map(|&x| count64(x)).collect::<Vec<u64>>();
        let (sc, sd, rc, rd) = (
            to64(send_counts),
            to64(sdispls),
            to64(recv_counts),
            to64(rdispls),
        );
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        let v = VArrays {
            send_counts: &sc,
            sdispls: &sd,
            recv_counts: &rc,
            rdispls: &rd,
        };
        // Receive parts are disjoint; the arrays have size() entries.
        // SAFETY: every part lies in its view, inside a live buffer of this
        // device (checked above); the tracker orders and keeps them alive.
        unsafe { raw::all_to_all_v(s, r, &v, T::DTYPE.hccl(), self.handle, stream.handle()) }
    }

    /// Sends `buf` to rank `peer` (`HcclSend`); `peer` receives it with
    /// [`Communicator::recv`] of the same length. Two ranks that send to
    /// each other should use [`Communicator::send_recv`]: on CANN a send
    /// may wait for its receiver.
    pub fn send<'a, T: DeviceRepr>(
        &self,
        buf: impl IntoView<'a, Elem = T>,
        peer: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::send";
        let buf = buf.into_view();
        self.check_stream(API, stream)?;
        self.check_buffer(API, "send", buf.buffer())?;
        self.check_peer(API, "peer", peer)?;
        self.begin(stream)?;
        let p = buf.track(stream)?;
        // SAFETY: the range lies inside a live buffer of this device; the
        // tracker orders the send after the last write and keeps the buffer
        // alive; peer < size fits u32.
        unsafe {
            raw::send(
                p,
                count64(buf.len()),
                T::DTYPE.hccl(),
                peer as u32,
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Receives into `buf` what rank `peer` sends (`HcclRecv`); the k-th
    /// receive from a peer meets that peer's k-th send to this rank.
    pub fn recv<'a, T: DeviceRepr>(
        &self,
        buf: impl IntoViewMut<'a, Elem = T>,
        peer: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::recv";
        let mut buf = buf.into_view_mut();
        self.check_stream(API, stream)?;
        self.check_buffer(API, "receive", buf.buffer())?;
        self.check_peer(API, "peer", peer)?;
        self.begin(stream)?;
        let p = buf.track(stream)?;
        // SAFETY: the range lies inside a live buffer of this device; the
        // tracker orders the receive after every earlier use and keeps the
        // buffer alive; peer < size fits u32.
        unsafe {
            raw::recv(
                p,
                count64(buf.len()),
                T::DTYPE.hccl(),
                peer as u32,
                self.handle,
                stream.handle(),
            )
        }
    }

    /// Sends `send` to rank `to` and receives from rank `from` into `recv`
    /// as one operation (`HcclBatchSendRecv`), so that exchanges such as a
    /// ring cannot deadlock. `to` and `from` may be the same peer.
    pub fn send_recv<'a, 'b, T: DeviceRepr>(
        &self,
        send: impl IntoView<'a, Elem = T>,
        to: usize,
        recv: impl IntoViewMut<'b, Elem = T>,
        from: usize,
        stream: &Arc<Stream>,
    ) -> Result<()> {
        const API: &str = "Communicator::send_recv";
        let send = send.into_view();
        let mut recv = recv.into_view_mut();
        self.check_pair(API, stream, send.buffer(), recv.buffer())?;
        self.check_peer(API, "destination", to)?;
        self.check_peer(API, "source", from)?;
        self.begin(stream)?;
        let s = send.track(stream)?;
        let r = recv.track(stream)?;
        let mut items = [
            HcclSendRecvItem {
                sendRecvType: HCCL_SEND,
                buf: s.cast_mut(),
                count: count64(send.len()),
                dataType: T::DTYPE.hccl(),
                remoteRank: to as u32,
            },
            HcclSendRecvItem {
                sendRecvType: HCCL_RECV,
                buf: r,
                count: count64(recv.len()),
                dataType: T::DTYPE.hccl(),
                remoteRank: from as u32,
            },
        ];
        // SAFETY: both ranges lie inside live, distinct buffers of this
        // device; HCCL only reads the send item's buffer; the tracker
        // orders the transfer and keeps both alive; peers fit u32.
        unsafe { raw::batch_send_recv(&mut items, self.handle, stream.handle()) }
    }

    /// Queues a barrier (`HcclBarrier`): later work on `stream` runs once
    /// every rank's stream has reached its barrier.
    pub fn barrier(&self, stream: &Arc<Stream>) -> Result<()> {
        const API: &str = "Communicator::barrier";
        self.check_stream(API, stream)?;
        self.begin(stream)?;
        // SAFETY: the handle and the stream are live; the stream's context
        // is bound; no buffer is involved.
        unsafe { raw::barrier(self.handle, stream.handle()) }
    }
}

/// Displacements of parts packed in rank order: the exclusive prefix sums
/// of `counts`.
pub(crate) fn prefix_sums(api: &'static str, what: &str, counts: &[usize]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for &c in counts {
        out.push(at);
        at = at
            .checked_add(c)
            .ok_or_else(|| Error::invalid(api, format!("the sum of {what} overflows")))?;
    }
    Ok(out)
}

/// Fails unless every part `[displs[i], displs[i] + counts[i])` lies in a
/// buffer of `len` elements. Empty parts are not checked: HCCL does not
/// touch them.
pub(crate) fn check_parts(
    api: &'static str,
    what: &str,
    counts: &[usize],
    displs: &[usize],
    len: usize,
) -> Result<()> {
    for (r, (&c, &d)) in counts.iter().zip(displs).enumerate() {
        if c == 0 {
            continue;
        }
        match d.checked_add(c) {
            Some(end) if end <= len => {}
            _ => {
                return Err(Error::invalid(
                    api,
                    format!(
                        "the {what} part of rank {r} ({c} elements at {d}) does not fit in {len} elements"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Fails if two non-empty receive parts overlap.
pub(crate) fn check_disjoint(api: &'static str, counts: &[usize], displs: &[usize]) -> Result<()> {
    let mut parts: Vec<(usize, usize, usize)> = counts
        .iter()
        .zip(displs)
        .enumerate()
        .filter(|(_, (c, _))| **c > 0)
        .map(|(r, (&c, &d))| (d, d.saturating_add(c), r))
        .collect();
    parts.sort_unstable();
    for w in parts.windows(2) {
        let ((_, end_a, ra), (start_b, _, rb)) = (w[0], w[1]);
        if start_b < end_a {
            return Err(Error::invalid(
                api,
                format!("the receive parts of ranks {ra} and {rb} overlap"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_sums_are_exclusive() {
        assert_eq!(prefix_sums("t", "c", &[3, 0, 2, 5]).unwrap(), [0, 3, 3, 5]);
        assert!(prefix_sums("t", "c", &[]).unwrap().is_empty());
        let e = prefix_sums("t", "c", &[usize::MAX, 1, 0]).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn parts_must_fit_and_empty_parts_are_free() {
        assert!(check_parts("t", "send", &[2, 0, 3], &[0, 99, 2], 5).is_ok());
        let e = check_parts("t", "send", &[2, 1, 3], &[0, 2, 3], 5).unwrap_err();
        assert!(e.to_string().contains("rank 2"), "{e}");
        assert!(check_parts("t", "send", &[1], &[usize::MAX], 5).is_err());
    }

    #[test]
    fn overlapping_receive_parts_are_refused() {
        assert!(check_disjoint("t", &[2, 0, 3], &[3, 0, 0]).is_ok());
        assert!(check_disjoint("t", &[2, 2], &[0, 2]).is_ok());
        let e = check_disjoint("t", &[3, 2], &[0, 2]).unwrap_err();
        assert!(e.to_string().contains("ranks 1 and 0") || e.to_string().contains("ranks 0 and 1"));
    }
}
