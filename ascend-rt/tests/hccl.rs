//! End-to-end tests of `ascend_rt::hccl` on the mock device with 8 devices.
//!
//! Every collective is checked against a host computation for every
//! element type and for worlds of 1, 2, 3 and 8 ranks. Values are small
//! integers (-2..=2), so that every sum, product, maximum and minimum over
//! 8 ranks is exact in f16, bf16 and f32 and the host can compute it in
//! i64 (integer results wrap as HCCL's do, by truncation). Invalid input is
//! checked to fail with `InvalidArgument` before HCCL is called (the mock's
//! call counters do not move), and HCCL failures to carry HCCL's code.
//!
//! Tests that read the mock's global counters or change its global fault
//! settings take the `exclusive` lock; all others take `shared`.

// Ranks index several parallel vectors (communicators, streams, buffers).
#![allow(clippy::needless_range_loop)]

use std::sync::{Arc, Once, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ascend_rt::hccl::{Communicator, ReduceOp, RootInfo, View, ViewMut};
use ascend_rt::{Backend, Context, Device, DeviceBuffer, DeviceRepr, Error, HcclCode, Stream};
use half::{bf16, f16};

static SETUP: Once = Once::new();
static LOCK: RwLock<()> = RwLock::new(());

/// Configures the mock with 8 devices and initialises it, once.
fn init() {
    SETUP.call_once(|| {
        let cfg = ascend_mock::Config {
            devices: 8,
            memory_per_device: 256 << 20,
            soc_name: "Ascend910B3".to_string(),
        };
        ascend_mock::configure(cfg).expect("the mock is configured before aclInit");
        // A rank whose peers never come fails after this instead of 30 s.
        ascend_mock::hccl::set_default_timeout(Some(Duration::from_secs(20)));
        ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
    });
}

fn shared() -> RwLockReadGuard<'static, ()> {
    init();
    LOCK.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    init();
    LOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// An element type of the tests: made from a small integer, exactly for
/// floats and by truncation for integers.
trait Elem: DeviceRepr + PartialEq {
    fn from_i64(v: i64) -> Self;
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    )*};
}
int_elem!(i8, i32, i64, u8);

impl Elem for f32 {
    fn from_i64(v: i64) -> Self {
        v as f32
    }
}
impl Elem for f16 {
    fn from_i64(v: i64) -> Self {
        f16::from_f32(v as f32)
    }
}
impl Elem for bf16 {
    fn from_i64(v: i64) -> Self {
        bf16::from_f32(v as f32)
    }
}

/// Runs `$f::<T>($args)` for every element type.
macro_rules! for_each_type {
    ($f:ident($($a:expr),*)) => {
        $f::<f32>($($a),*);
        $f::<f16>($($a),*);
        $f::<bf16>($($a),*);
        $f::<i8>($($a),*);
        $f::<i32>($($a),*);
        $f::<i64>($($a),*);
        $f::<u8>($($a),*);
    };
}

/// The test value of element `i` on rank `r` (in -2..=2), shifted by `salt`.
fn val(r: usize, i: usize, salt: usize) -> i64 {
    ((r * 3 + i * 5 + salt * 7) % 5) as i64 - 2
}

fn values<T: Elem>(r: usize, len: usize, salt: usize) -> Vec<T> {
    (0..len).map(|i| T::from_i64(val(r, i, salt))).collect()
}

fn fold(op: ReduceOp, vals: impl Iterator<Item = i64>) -> i64 {
    vals.reduce(|a, b| match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Prod => a * b,
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    })
    .expect("at least one rank")
}

/// All ranks of one communicator, each with a stream of its own.
struct World {
    comms: Vec<Communicator>,
    streams: Vec<Arc<Stream>>,
}

fn world(n: usize) -> World {
    let devices: Vec<Device> = (0..n as i32).map(Device::new).collect();
    let comms = Communicator::init_all(&devices).expect("HcclCommInitAll");
    let streams = comms
        .iter()
        .map(|c| c.context().new_stream().expect("stream"))
        .collect();
    World { comms, streams }
}

impl World {
    fn n(&self) -> usize {
        self.comms.len()
    }

    fn upload<T: DeviceRepr>(&self, r: usize, data: &[T]) -> DeviceBuffer<T> {
        DeviceBuffer::from_host(self.comms[r].context(), data).expect("upload")
    }

    fn zeros<T: DeviceRepr>(&self, r: usize, len: usize) -> DeviceBuffer<T> {
        DeviceBuffer::zeroed(self.comms[r].context(), len).expect("zeroed")
    }

    fn sends<T: Elem>(&self, len: usize, salt: usize) -> Vec<DeviceBuffer<T>> {
        (0..self.n())
            .map(|r| self.upload(r, &values::<T>(r, len, salt)))
            .collect()
    }
}

const SIZES: [usize; 4] = [1, 2, 3, 8];

fn all_reduce_case<T: Elem>(w: &World, len: usize) {
    let n = w.n();
    for op in ReduceOp::ALL {
        let sends = w.sends::<T>(len, op as usize);
        let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, len)).collect();
        let mut in_place = w.sends::<T>(len, op as usize);
        if !op.supports(T::DTYPE) {
            let e = w.comms[0]
                .all_reduce(&sends[0], &mut recvs[0], op, &w.streams[0])
                .unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
            continue;
        }
        for r in 0..n {
            w.comms[r]
                .all_reduce(&sends[r], &mut recvs[r], op, &w.streams[r])
                .unwrap();
        }
        for r in 0..n {
            w.comms[r]
                .all_reduce_in_place(&mut in_place[r], op, &w.streams[r])
                .unwrap();
        }
        let want: Vec<T> = (0..len)
            .map(|i| T::from_i64(fold(op, (0..n).map(|r| val(r, i, op as usize)))))
            .collect();
        for r in 0..n {
            let what = format!("{op:?} of {} on rank {r} of {n}", T::DTYPE);
            assert_eq!(recvs[r].to_vec().unwrap(), want, "{what}");
            assert_eq!(in_place[r].to_vec().unwrap(), want, "in place {what}");
        }
    }
}

#[test]
fn all_reduce_matches_the_host_for_every_op_type_and_world() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for len in [0, 1, 13] {
            for_each_type!(all_reduce_case(&w, len));
        }
    }
}

fn all_gather_case<T: Elem>(w: &World, len: usize) {
    let n = w.n();
    let sends = w.sends::<T>(len, 1);
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, len * n)).collect();
    for r in 0..n {
        w.comms[r]
            .all_gather(&sends[r], &mut recvs[r], &w.streams[r])
            .unwrap();
    }
    let want: Vec<T> = (0..n).flat_map(|src| values::<T>(src, len, 1)).collect();
    for (r, recv) in recvs.iter().enumerate() {
        assert_eq!(recv.to_vec().unwrap(), want, "{} rank {r} of {n}", T::DTYPE);
    }
}

#[test]
fn all_gather_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for len in [0, 5] {
            for_each_type!(all_gather_case(&w, len));
        }
    }
}

fn reduce_scatter_case<T: Elem>(w: &World, part: usize) {
    let n = w.n();
    for op in ReduceOp::ALL {
        if !op.supports(T::DTYPE) {
            continue;
        }
        let sends = w.sends::<T>(part * n, 2 + op as usize);
        let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, part)).collect();
        for r in 0..n {
            w.comms[r]
                .reduce_scatter(&sends[r], &mut recvs[r], op, &w.streams[r])
                .unwrap();
        }
        for (r, recv) in recvs.iter().enumerate() {
            let want: Vec<T> = (0..part)
                .map(|i| {
                    let at = r * part + i;
                    T::from_i64(fold(op, (0..n).map(|src| val(src, at, 2 + op as usize))))
                })
                .collect();
            assert_eq!(
                recv.to_vec().unwrap(),
                want,
                "{op:?} {} rank {r} of {n}",
                T::DTYPE
            );
        }
    }
}

#[test]
fn reduce_scatter_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for part in [0, 3] {
            for_each_type!(reduce_scatter_case(&w, part));
        }
    }
}

fn broadcast_case<T: Elem>(w: &World, root: usize) {
    let n = w.n();
    let len = 9;
    let mut bufs = w.sends::<T>(len, 3);
    for r in 0..n {
        w.comms[r]
            .broadcast(&mut bufs[r], root, &w.streams[r])
            .unwrap();
    }
    let want = values::<T>(root, len, 3);
    for (r, b) in bufs.iter().enumerate() {
        assert_eq!(
            b.to_vec().unwrap(),
            want,
            "{} from {root} to rank {r} of {n}",
            T::DTYPE
        );
    }
}

#[test]
fn broadcast_from_every_root_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        // The last rank, then (for small worlds) every other root.
        for root in std::iter::once(n - 1).chain((0..n.saturating_sub(1)).filter(|_| n <= 3)) {
            for_each_type!(broadcast_case(&w, root));
        }
    }
}

/// Whether non-root rank `r` passes its unused buffer to a rooted
/// collective (odd ranks do, even ranks pass `None`).
fn passes_unused(r: usize) -> bool {
    r % 2 == 1
}

fn reduce_case<T: Elem>(w: &World, len: usize, root: usize) {
    let n = w.n();
    for op in ReduceOp::ALL {
        let salt = 11 + op as usize;
        let sends = w.sends::<T>(len, salt);
        // Every rank has a buffer preset to 7; the root's gets the result,
        // the others' (passed by odd ranks) must keep their contents.
        let mut recvs: Vec<DeviceBuffer<T>> = (0..n)
            .map(|r| w.upload(r, &vec![T::from_i64(7); len]))
            .collect();
        if !op.supports(T::DTYPE) {
            for r in 0..n {
                let recv = (r == root || passes_unused(r)).then(|| (&mut recvs[r]).into());
                let e = w.comms[r]
                    .reduce(&sends[r], recv, op, root, &w.streams[r])
                    .unwrap_err();
                assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
            }
            continue;
        }
        for (r, recv) in recvs.iter_mut().enumerate() {
            let recv = (r == root || passes_unused(r)).then(|| recv.into());
            w.comms[r]
                .reduce(&sends[r], recv, op, root, &w.streams[r])
                .unwrap();
        }
        let want: Vec<T> = (0..len)
            .map(|i| T::from_i64(fold(op, (0..n).map(|r| val(r, i, salt)))))
            .collect();
        for (r, recv) in recvs.iter().enumerate() {
            let what = format!("{op:?} of {} to root {root}, rank {r} of {n}", T::DTYPE);
            if r == root {
                assert_eq!(recv.to_vec().unwrap(), want, "{what}");
            } else {
                assert_eq!(
                    recv.to_vec().unwrap(),
                    vec![T::from_i64(7); len],
                    "non-root buffer written: {what}"
                );
            }
        }
    }
}

#[test]
fn reduce_to_first_and_last_root_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for len in [0, 1, 13] {
            for root in [n - 1, 0] {
                for_each_type!(reduce_case(&w, len, root));
            }
        }
    }
}

fn scatter_case<T: Elem>(w: &World, part: usize, root: usize) {
    let n = w.n();
    // Every rank has a source of part * n elements; only the root's is
    // scattered (odd non-root ranks pass theirs, which must be ignored).
    let sends = w.sends::<T>(part * n, 12);
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n)
        .map(|r| w.upload(r, &vec![T::from_i64(7); part]))
        .collect();
    for (r, recv) in recvs.iter_mut().enumerate() {
        let send = (r == root || passes_unused(r)).then(|| (&sends[r]).into());
        w.comms[r].scatter(send, recv, root, &w.streams[r]).unwrap();
    }
    let all = values::<T>(root, part * n, 12);
    for (r, recv) in recvs.iter().enumerate() {
        assert_eq!(
            recv.to_vec().unwrap(),
            all[r * part..(r + 1) * part].to_vec(),
            "{} from root {root} to rank {r} of {n}",
            T::DTYPE
        );
    }
}

#[test]
fn scatter_from_first_and_last_root_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for part in [0, 1, 3] {
            for root in [n - 1, 0] {
                for_each_type!(scatter_case(&w, part, root));
            }
        }
    }
}

fn all_to_all_case<T: Elem>(w: &World, part: usize) {
    let n = w.n();
    let sends = w.sends::<T>(part * n, 4);
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, part * n)).collect();
    for r in 0..n {
        w.comms[r]
            .all_to_all(&sends[r], &mut recvs[r], &w.streams[r])
            .unwrap();
    }
    for (r, recv) in recvs.iter().enumerate() {
        let want: Vec<T> = (0..n)
            .flat_map(|src| {
                let all = values::<T>(src, part * n, 4);
                all[r * part..(r + 1) * part].to_vec()
            })
            .collect();
        assert_eq!(recv.to_vec().unwrap(), want, "{} rank {r} of {n}", T::DTYPE);
    }
}

#[test]
fn all_to_all_matches_the_host() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for part in [0, 2] {
            for_each_type!(all_to_all_case(&w, part));
        }
    }
}

/// Elements rank `src` sends to rank `dst` in the uneven pattern; `zeros`
/// makes every count zero.
fn v_count(src: usize, dst: usize, zeros: bool) -> usize {
    if zeros { 0 } else { (src * 2 + dst * 3) % 4 }
}

fn all_to_all_v_case<T: Elem>(w: &World, zeros: bool) {
    let n = w.n();
    let send_counts: Vec<Vec<usize>> = (0..n)
        .map(|s| (0..n).map(|d| v_count(s, d, zeros)).collect())
        .collect();
    let recv_counts: Vec<Vec<usize>> = (0..n)
        .map(|d| (0..n).map(|s| v_count(s, d, zeros)).collect())
        .collect();
    // Send buffers one element longer than needed, receive buffers two:
    // the tail must stay untouched.
    let send_len = |s: usize| send_counts[s].iter().sum::<usize>() + 1;
    let recv_len = |d: usize| recv_counts[d].iter().sum::<usize>() + 2;
    let sends: Vec<DeviceBuffer<T>> = (0..n)
        .map(|s| w.upload(s, &values::<T>(s, send_len(s), 5)))
        .collect();
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n)
        .map(|d| w.upload(d, &vec![T::from_i64(7); recv_len(d)]))
        .collect();
    for r in 0..n {
        w.comms[r]
            .all_to_all_v(
                &sends[r],
                &send_counts[r],
                &mut recvs[r],
                &recv_counts[r],
                &w.streams[r],
            )
            .unwrap();
    }
    for (d, recv) in recvs.iter().enumerate() {
        let mut want = Vec::new();
        for s in 0..n {
            let data = values::<T>(s, send_len(s), 5);
            let start: usize = send_counts[s][..d].iter().sum();
            want.extend_from_slice(&data[start..start + send_counts[s][d]]);
        }
        want.extend([T::from_i64(7); 2]);
        assert_eq!(
            recv.to_vec().unwrap(),
            want,
            "{} rank {d} of {n}, zeros {zeros}",
            T::DTYPE
        );
    }
}

fn all_to_all_v_displs_case<T: Elem>(w: &World) {
    // Each rank sends 1 + dst elements to dst, taken from the end of its
    // buffer backwards, and places the part from src at the front in
    // reverse rank order.
    let n = w.n();
    let count = |dst: usize| 1 + dst;
    let total: usize = (0..n).map(count).sum();
    let sdispls: Vec<usize> = (0..n)
        .map(|d| total - (0..=d).map(count).sum::<usize>())
        .collect();
    let sends: Vec<DeviceBuffer<T>> = (0..n)
        .map(|s| w.upload(s, &values::<T>(s, total, 6)))
        .collect();
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|d| w.zeros(d, n * n)).collect();
    for r in 0..n {
        let send_counts: Vec<usize> = (0..n).map(count).collect();
        let recv_counts = vec![count(r); n];
        let rdispls: Vec<usize> = (0..n).map(|s| (n - 1 - s) * count(r)).collect();
        w.comms[r]
            .all_to_all_v_with_displs(
                &sends[r],
                &send_counts,
                &sdispls,
                &mut recvs[r],
                &recv_counts,
                &rdispls,
                &w.streams[r],
            )
            .unwrap();
    }
    for (d, recv) in recvs.iter().enumerate() {
        let mut want = vec![T::from_i64(0); n * n];
        for s in 0..n {
            let data = values::<T>(s, total, 6);
            let at = (n - 1 - s) * count(d);
            want[at..at + count(d)].copy_from_slice(&data[sdispls[d]..sdispls[d] + count(d)]);
        }
        assert_eq!(recv.to_vec().unwrap(), want, "{} rank {d} of {n}", T::DTYPE);
    }
}

#[test]
fn all_to_all_v_matches_the_host_with_uneven_and_zero_counts() {
    let _g = shared();
    for n in SIZES {
        let w = world(n);
        for zeros in [false, true] {
            for_each_type!(all_to_all_v_case(&w, zeros));
        }
        for_each_type!(all_to_all_v_displs_case(&w));
    }
}

fn ring_case<T: Elem>(w: &World) {
    let n = w.n();
    let len = 6;
    let sends = w.sends::<T>(len, 8);
    let mut recvs: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, len)).collect();
    for r in 0..n {
        w.comms[r]
            .send_recv(
                &sends[r],
                (r + 1) % n,
                &mut recvs[r],
                (r + n - 1) % n,
                &w.streams[r],
            )
            .unwrap();
    }
    for (r, recv) in recvs.iter().enumerate() {
        let from = (r + n - 1) % n;
        assert_eq!(
            recv.to_vec().unwrap(),
            values::<T>(from, len, 8),
            "{} ring rank {r} of {n}",
            T::DTYPE
        );
    }
}

fn send_recv_case<T: Elem>(w: &World) {
    // Rank 0 sends a different message to every other rank; each answers
    // with its own, which rank 0 receives in rank order.
    let n = w.n();
    let len = 4;
    let to_peer: Vec<DeviceBuffer<T>> = (1..n)
        .map(|p| w.upload(0, &values::<T>(p, len, 9)))
        .collect();
    let mut at_peer: Vec<DeviceBuffer<T>> = (0..n).map(|r| w.zeros(r, len)).collect();
    let answers = w.sends::<T>(len, 10);
    let mut at_root: Vec<DeviceBuffer<T>> = (1..n).map(|_| w.zeros(0, len)).collect();
    for p in 1..n {
        w.comms[0].send(&to_peer[p - 1], p, &w.streams[0]).unwrap();
        w.comms[p].recv(&mut at_peer[p], 0, &w.streams[p]).unwrap();
        w.comms[p].send(&answers[p], 0, &w.streams[p]).unwrap();
    }
    for (p, buf) in at_root.iter_mut().enumerate() {
        w.comms[0].recv(buf, p + 1, &w.streams[0]).unwrap();
    }
    for p in 1..n {
        assert_eq!(at_peer[p].to_vec().unwrap(), values::<T>(p, len, 9));
        assert_eq!(at_root[p - 1].to_vec().unwrap(), values::<T>(p, len, 10));
    }
}

#[test]
fn send_recv_and_the_ring_match_the_host() {
    let _g = shared();
    for n in [2, 3, 8] {
        let w = world(n);
        for_each_type!(ring_case(&w));
        for_each_type!(send_recv_case(&w));
    }
}

#[test]
fn views_send_a_prefix_and_receive_into_a_range() {
    let _g = shared();
    let w = world(2);
    let pool0 = w.upload(0, &[1.0f32, 2.0, 3.0, 4.0, 5.0]);
    let pool1 = w.upload(1, &[10.0f32, 20.0, 30.0, 40.0, 50.0]);
    let mut out0 = w.upload(0, &[0.0f32; 6]);
    let mut out1 = w.upload(1, &[0.0f32; 6]);
    // The first 3 rows of each pool, gathered into elements 0..6.
    w.comms[0]
        .all_gather(
            View::prefix(&pool0, 3).unwrap(),
            ViewMut::range(&mut out0, 0..6).unwrap(),
            &w.streams[0],
        )
        .unwrap();
    w.comms[1]
        .all_gather(View::prefix(&pool1, 3).unwrap(), &mut out1, &w.streams[1])
        .unwrap();
    let want = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
    assert_eq!(out0.to_vec().unwrap(), want);
    assert_eq!(out1.to_vec().unwrap(), want);
    // A send of elements 1..3 into the middle of the receiver.
    let mut mid = w.upload(1, &[0.0f32; 5]);
    w.comms[0]
        .send(View::range(&pool0, 1..3).unwrap(), 1, &w.streams[0])
        .unwrap();
    w.comms[1]
        .recv(ViewMut::range(&mut mid, 2..4).unwrap(), 0, &w.streams[1])
        .unwrap();
    assert_eq!(mid.to_vec().unwrap(), [0.0, 0.0, 2.0, 3.0, 0.0]);
    // Reduce of a prefix into a range of the root, and scatter of a range
    // of the root into a prefix.
    let mut wide = w.upload(1, &[0.0f32; 5]);
    w.comms[0]
        .reduce(
            View::prefix(&pool0, 2).unwrap(),
            None,
            ReduceOp::Sum,
            1,
            &w.streams[0],
        )
        .unwrap();
    w.comms[1]
        .reduce(
            View::prefix(&pool1, 2).unwrap(),
            Some(ViewMut::range(&mut wide, 3..5).unwrap()),
            ReduceOp::Sum,
            1,
            &w.streams[1],
        )
        .unwrap();
    assert_eq!(wide.to_vec().unwrap(), [0.0, 0.0, 0.0, 11.0, 22.0]);
    let mut part0 = w.upload(0, &[0.0f32; 3]);
    w.comms[0]
        .scatter(
            Some(View::range(&pool0, 1..5).unwrap()),
            ViewMut::prefix(&mut part0, 2).unwrap(),
            0,
            &w.streams[0],
        )
        .unwrap();
    w.comms[1]
        .scatter(
            None,
            ViewMut::range(&mut wide, 0..2).unwrap(),
            0,
            &w.streams[1],
        )
        .unwrap();
    assert_eq!(part0.to_vec().unwrap(), [2.0, 3.0, 0.0]);
    assert_eq!(wide.to_vec().unwrap(), [4.0, 5.0, 0.0, 11.0, 22.0]);
    let e = View::prefix(&pool0, 6).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let e = ViewMut::range(&mut mid, 4..6).unwrap_err();
    assert!(e.to_string().contains("4..6"), "{e}");
}

#[test]
fn ranks_driven_from_their_own_threads() {
    let _g = shared();
    let n = 3;
    let devices: Vec<Device> = (0..n).map(Device::new).collect();
    let comms = Communicator::init_all(&devices).unwrap();
    let names: Vec<String> = comms.iter().map(|c| c.name().unwrap()).collect();
    assert!(
        names.iter().all(|x| *x == names[0] && !x.is_empty()),
        "{names:?}"
    );
    let handles: Vec<_> = comms
        .into_iter()
        .map(|comm| {
            std::thread::spawn(move || {
                let s = comm.context().new_stream().unwrap();
                let r = comm.rank();
                let x = DeviceBuffer::from_host(comm.context(), &[r as i32 + 1; 4]).unwrap();
                let mut y = DeviceBuffer::<i32>::zeroed(comm.context(), 4).unwrap();
                comm.all_reduce(&x, &mut y, ReduceOp::Sum, &s).unwrap();
                let out = y.to_vec().unwrap();
                assert_eq!(comm.async_error().unwrap(), None);
                comm.destroy().unwrap();
                out
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), [6; 4]);
    }
}

#[test]
fn init_rank_from_threads_builds_a_working_communicator() {
    let _g = shared();
    for n in [1usize, 3, 8] {
        let ctx0 = Context::new(0).unwrap();
        let root = RootInfo::new(&ctx0).unwrap();
        // Sent as bytes, as between processes.
        let bytes = root.as_bytes().to_vec();
        assert_eq!(bytes.len(), RootInfo::BYTES);
        let handles: Vec<_> = (0..n)
            .map(|rank| {
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let ctx = Context::new(rank as i32).unwrap();
                    let root = RootInfo::from_bytes(&bytes).unwrap();
                    let comm = Communicator::init_rank(&root, n, rank, &ctx).unwrap();
                    assert_eq!((comm.rank(), comm.size()), (rank, n));
                    assert_eq!(comm.device(), Device::new(rank as i32));
                    let s = ctx.new_stream().unwrap();
                    let x = DeviceBuffer::from_host(&ctx, &[rank as f32; 3]).unwrap();
                    let mut all = DeviceBuffer::<f32>::zeroed(&ctx, 3 * n).unwrap();
                    comm.all_gather(&x, &mut all, &s).unwrap();
                    all.to_vec().unwrap()
                })
            })
            .collect();
        let want: Vec<f32> = (0..n).flat_map(|r| [r as f32; 3]).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want, "{n} ranks");
        }
    }
}

/// Asserts an `InvalidArgument` whose text contains `needle`.
#[track_caller]
fn invalid(r: ascend_rt::Result<()>, needle: &str) {
    match r {
        Err(e @ Error::InvalidArgument { .. }) => {
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}")
        }
        other => panic!("expected InvalidArgument containing {needle:?}, got {other:?}"),
    }
}

/// Every HCCL collective the mock counts.
const COLLECTIVES: [&str; 10] = [
    "HcclAllReduce",
    "HcclBroadcast",
    "HcclReduce",
    "HcclScatter",
    "HcclAllGather",
    "HcclReduceScatter",
    "HcclAlltoAll",
    "HcclAlltoAllV",
    "HcclSend",
    "HcclRecv",
];

fn counts() -> Vec<u64> {
    COLLECTIVES
        .iter()
        .map(|a| ascend_mock::fault::call_count(a))
        .chain([ascend_mock::fault::call_count("HcclBatchSendRecv")])
        .collect()
}

#[test]
fn invalid_arguments_are_refused_before_hccl_is_called() {
    let _g = exclusive();
    let w = world(3);
    let (c, s) = (&w.comms[0], &w.streams[0]);
    let x4 = w.upload(0, &[1.0f32; 4]);
    let mut y4 = w.zeros::<f32>(0, 4);
    let mut y5 = w.zeros::<f32>(0, 5);
    let x12 = w.upload(0, &[1.0f32; 12]);
    let other = w.upload(1, &[1.0f32; 4]);
    let mut other_out = w.zeros::<f32>(1, 4);
    let s1 = &w.streams[1];
    let before = counts();
    let tracked = (x4.tracked_streams(), y4.tracked_streams());

    invalid(c.all_reduce(&x4, &mut y5, ReduceOp::Sum, s), "equal counts");
    invalid(
        c.all_reduce(&x4, &mut y4, ReduceOp::Sum, s1),
        "the stream runs on npu:1",
    );
    invalid(
        c.all_reduce(&other, &mut y4, ReduceOp::Sum, s),
        "send buffer is on npu:1",
    );
    invalid(
        c.all_reduce(&x4, &mut other_out, ReduceOp::Sum, s),
        "receive buffer is on npu:1",
    );
    let b = w.upload(0, &[bf16::ONE; 4]);
    let mut bo = w.zeros::<bf16>(0, 4);
    invalid(
        c.all_reduce(&b, &mut bo, ReduceOp::Prod, s),
        "prod does not support bf16",
    );
    let mut u = w.upload(0, &[1u8; 4]);
    invalid(
        c.all_reduce_in_place(&mut u, ReduceOp::Max, s),
        "reduces f32",
    );
    invalid(c.all_gather(&x4, &mut y4, s), "needs 12");
    invalid(c.reduce_scatter(&x4, &mut y4, ReduceOp::Sum, s), "needs 12");
    invalid(
        c.reduce_scatter(&x12, &mut y5, ReduceOp::Sum, s),
        "needs 15",
    );
    invalid(c.all_to_all(&x4, &mut y4, s), "multiple of the 3 ranks");
    invalid(c.all_to_all(&x12, &mut y4, s), "equal lengths");
    invalid(c.broadcast(&mut y4, 3, s), "root 3 is not a rank");
    invalid(
        c.reduce(&x4, Some((&mut y5).into()), ReduceOp::Sum, 0, s),
        "equal counts",
    );
    invalid(
        c.reduce(&x4, Some((&mut y5).into()), ReduceOp::Sum, 2, s),
        "equal counts",
    );
    invalid(
        c.reduce(&x4, None, ReduceOp::Sum, 0, s),
        "rank 0 is the root and must pass the receive buffer",
    );
    invalid(
        c.reduce(&x4, Some((&mut y4).into()), ReduceOp::Sum, 3, s),
        "root 3 is not a rank",
    );
    invalid(
        c.reduce(&x4, Some((&mut other_out).into()), ReduceOp::Sum, 0, s),
        "receive buffer is on npu:1",
    );
    invalid(
        c.reduce(&other, None, ReduceOp::Sum, 1, s),
        "send buffer is on npu:1",
    );
    invalid(
        c.reduce(&x4, None, ReduceOp::Sum, 1, s1),
        "the stream runs on npu:1",
    );
    invalid(
        c.reduce(&b, None, ReduceOp::Prod, 1, s),
        "prod does not support bf16",
    );
    invalid(c.scatter(Some((&x4).into()), &mut y4, 0, s), "needs 12");
    invalid(c.scatter(Some((&x4).into()), &mut y4, 2, s), "needs 12");
    invalid(
        c.scatter(None, &mut y4, 0, s),
        "rank 0 is the root and must pass the send buffer of the 12",
    );
    invalid(
        c.scatter(Some((&x12).into()), &mut y4, 3, s),
        "root 3 is not a rank",
    );
    invalid(
        c.scatter(Some((&other).into()), &mut y4, 1, s),
        "send buffer is on npu:1",
    );
    invalid(
        c.scatter(None, &mut other_out, 1, s),
        "receive buffer is on npu:1",
    );
    invalid(c.send(&x4, 3, s), "peer 3 is not a rank");
    invalid(c.send(&x4, 0, s), "this rank itself");
    invalid(c.recv(&mut y4, 7, s), "peer 7 is not a rank");
    invalid(c.recv(&mut y4, 0, s), "this rank itself");
    invalid(c.send_recv(&x4, 1, &mut y4, 0, s), "source 0 is this rank");
    invalid(c.send_recv(&x4, 5, &mut y4, 1, s), "destination 5");
    invalid(
        c.all_to_all_v(&x4, &[1, 1], &mut y4, &[1, 1, 1], s),
        "send_counts has 2 entries",
    );
    invalid(
        c.all_to_all_v(&x4, &[2, 2, 1], &mut y4, &[1, 1, 1], s),
        "send part of rank 2",
    );
    invalid(
        c.all_to_all_v(&x4, &[1, 1, 1], &mut y4, &[4, 0, 1], s),
        "receive part of rank 2",
    );
    invalid(
        c.all_to_all_v_with_displs(
            &x4,
            &[1, 1, 1],
            &[0, 1, 2],
            &mut y4,
            &[2, 2, 0],
            &[0, 1, 0],
            s,
        ),
        "overlap",
    );
    invalid(
        c.all_to_all_v_with_displs(
            &x4,
            &[1, 1, 1],
            &[0, 1, 4],
            &mut y4,
            &[1, 1, 1],
            &[0, 1, 2],
            s,
        ),
        "send part of rank 2",
    );
    invalid(
        c.all_to_all_v_with_displs(&x4, &[1, 1, 1], &[0, 1], &mut y4, &[1, 1, 1], &[0, 1, 2], s),
        "sdispls has 2 entries",
    );
    invalid(c.barrier(s1), "the stream runs on npu:1");
    assert_eq!(counts(), before, "an HCCL collective was called");
    assert_eq!((x4.tracked_streams(), y4.tracked_streams()), tracked);

    // Constructors.
    let init_all = |d: &[i32]| {
        Communicator::init_all(&d.iter().map(|&o| Device::new(o)).collect::<Vec<_>>()).map(|_| ())
    };
    invalid(init_all(&[]), "no devices");
    invalid(init_all(&[0, 1, 0]), "npu:0 is given twice");
    let ctx = Context::new(0).unwrap();
    let root = RootInfo::new(&ctx).unwrap();
    invalid(
        Communicator::init_rank(&root, 2, 2, &ctx).map(|_| ()),
        "rank 2 is not below",
    );
    invalid(
        Communicator::init_rank(&root, 0, 0, &ctx).map(|_| ()),
        "at least one rank",
    );
}

#[test]
fn hccl_failures_carry_the_hccl_code() {
    let _g = exclusive();
    let w = world(2);
    // An injected failure of the call itself.
    let n = ascend_mock::fault::call_count("HcclBarrier");
    ascend_mock::fault::fail_nth(
        "HcclBarrier",
        n + 1,
        ascend_sys::HCCL_E_INTERNAL as ascend_sys::aclError,
    );
    match w.comms[0].barrier(&w.streams[0]) {
        Err(Error::Hccl { api, code, message }) => {
            assert_eq!(api, "HcclBarrier");
            assert_eq!(code, HcclCode::HCCL_E_INTERNAL);
            assert!(!message.is_empty());
        }
        other => panic!("expected Error::Hccl, got {other:?}"),
    }
    // Nothing was queued: the barrier works on both ranks afterwards.
    for r in 0..2 {
        w.comms[r].barrier(&w.streams[r]).unwrap();
    }
    for s in &w.streams {
        s.synchronize().unwrap();
    }
    // A root info HCCL cannot read.
    let ctx = Context::new(0).unwrap();
    let garbage = RootInfo::from_bytes(&[0xA5; RootInfo::BYTES]).unwrap();
    match Communicator::init_rank(&garbage, 2, 0, &ctx) {
        Err(e @ Error::Hccl { .. }) => {
            assert_eq!(e.api(), Some("HcclCommInitRootInfo"));
            assert!(e.to_string().contains("HCCL_E_"), "{e}");
        }
        other => panic!("expected Error::Hccl, got {other:?}"),
    }
}

#[test]
fn a_peer_that_never_joins_times_out_with_hccl_e_timeout() {
    let _g = shared();
    let w = world(2);
    ascend_mock::hccl::set_comm_timeout(w.comms[0].handle(), Duration::from_millis(200)).unwrap();
    let x = w.upload(0, &[1i32; 4]);
    let mut y = w.zeros::<i32>(0, 4);
    // Rank 1 never queues its part.
    w.comms[0]
        .all_reduce(&x, &mut y, ReduceOp::Sum, &w.streams[0])
        .unwrap();
    let e = w.streams[0].synchronize().unwrap_err();
    assert_eq!(e.acl_code().map(|c| c.raw()), Some(507048), "{e}");
    assert_eq!(
        w.comms[0].async_error().unwrap(),
        Some(HcclCode::HCCL_E_TIMEOUT)
    );
    assert_eq!(w.comms[1].async_error().unwrap(), None);
}

#[test]
fn collectives_on_another_stream_are_ordered_without_manual_sync() {
    let _g = exclusive();
    ascend_mock::fault::set_jitter(Some(ascend_mock::fault::Jitter {
        seed: 7,
        max_us: 2000,
    }));
    let w = world(2);
    let len = 64;
    let mut results = Vec::new();
    for round in 0..3 {
        // Written on stream A of each rank, reduced on stream B.
        let streams_a: Vec<Arc<Stream>> = w
            .comms
            .iter()
            .map(|c| c.context().new_stream().unwrap())
            .collect();
        let srcs: Vec<DeviceBuffer<i32>> = (0..2)
            .map(|r| w.upload(r, &vec![(r + 1 + round) as i32; len]))
            .collect();
        let mut xs: Vec<DeviceBuffer<i32>> = (0..2).map(|r| w.zeros(r, len)).collect();
        let mut ys: Vec<DeviceBuffer<i32>> = (0..2).map(|r| w.zeros(r, len)).collect();
        for r in 0..2 {
            xs[r].copy_from(&srcs[r], &streams_a[r]).unwrap();
        }
        for r in 0..2 {
            w.comms[r]
                .all_reduce(&xs[r], &mut ys[r], ReduceOp::Sum, &w.streams[r])
                .unwrap();
            // The tracker saw the read on B and the write on B.
            let (_, readers) = xs[r].tracked_streams();
            assert!(readers.contains(&w.streams[r].id()));
            assert_eq!(ys[r].tracked_streams().0, Some(w.streams[r].id()));
        }
        // A write on A after the collective must wait for its read on B.
        for r in 0..2 {
            xs[r].memset_async(0, &streams_a[r]).unwrap();
        }
        for y in &ys {
            results.push(y.to_vec().unwrap());
        }
        for r in 0..2 {
            results.push(xs[r].to_vec().unwrap());
        }
    }
    ascend_mock::fault::set_jitter(None);
    for (round, chunk) in results.chunks(4).enumerate() {
        let sum = (1 + round + 2 + round) as i32;
        assert_eq!(chunk[0], vec![sum; len], "round {round}");
        assert_eq!(chunk[1], vec![sum; len], "round {round}");
        assert_eq!(chunk[2], vec![0; len]);
        assert_eq!(chunk[3], vec![0; len]);
    }
}

#[test]
fn communicators_are_send_and_report_their_ranks() {
    fn is_send<T: Send>() {}
    is_send::<Communicator>();
    let _g = shared();
    let w = world(3);
    for (i, c) in w.comms.iter().enumerate() {
        assert_eq!((c.rank(), c.size()), (i, 3));
        assert_eq!(c.device(), Device::new(i as i32));
        assert!(!c.handle().is_null());
    }
}

#[test]
fn all_to_all_v_counts_that_disagree_between_peers_fail_on_the_device() {
    let _g = shared();
    let w = world(2);
    let x: Vec<DeviceBuffer<f32>> = (0..2).map(|r| w.upload(r, &[1.0; 4])).collect();
    let mut y: Vec<DeviceBuffer<f32>> = (0..2).map(|r| w.zeros(r, 4)).collect();
    // Rank 0 sends 2 elements to rank 1, which expects 1: only the peers
    // together can see it, so HCCL reports it when the collective runs.
    w.comms[0]
        .all_to_all_v(&x[0], &[1, 2], &mut y[0], &[1, 1], &w.streams[0])
        .unwrap();
    w.comms[1]
        .all_to_all_v(&x[1], &[1, 1], &mut y[1], &[1, 1], &w.streams[1])
        .unwrap();
    for r in 0..2 {
        let e = w.streams[r].synchronize().unwrap_err();
        assert!(matches!(e, Error::Acl { .. }), "{e}");
        assert!(w.comms[r].async_error().unwrap().is_some(), "rank {r}");
    }
}

#[test]
fn host_writes_and_drops_wait_for_the_collective_that_reads_the_buffer() {
    let _g = shared();
    let World { mut comms, streams } = world(2);
    let c1 = comms.pop().unwrap();
    let s1 = streams[1].clone();
    let c0 = comms.pop().unwrap();
    let mut x0 = DeviceBuffer::from_host(c0.context(), &[2i64; 8]).unwrap();
    let mut y0 = DeviceBuffer::<i64>::zeroed(c0.context(), 8).unwrap();
    c0.all_reduce(&x0, &mut y0, ReduceOp::Sum, &streams[0])
        .unwrap();
    // Rank 1 joins later, from another thread. Overwriting x0 from the
    // host meanwhile must wait until the collective has read it (else the
    // sum would be 105), and so must dropping it.
    let peer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let x1 = DeviceBuffer::from_host(c1.context(), &[5i64; 8]).unwrap();
        let mut y1 = DeviceBuffer::<i64>::zeroed(c1.context(), 8).unwrap();
        c1.all_reduce(&x1, &mut y1, ReduceOp::Sum, &s1).unwrap();
        y1.to_vec().unwrap()
    });
    x0.copy_from_host(&[100; 8]).unwrap();
    drop(x0);
    assert_eq!(y0.to_vec().unwrap(), [7; 8]);
    assert_eq!(peer.join().unwrap(), [7; 8]);
}
