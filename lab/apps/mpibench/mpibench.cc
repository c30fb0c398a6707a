// mpibench: the MPI experiment's benchmark (lab/apps/mpi.py). Point-to-point and collective
// operations between ranks in emulated VMs, timed with MPI_Wtime, every result checked:
//
//   pingpong   rank 0 <-> rank 1, message sizes from 1 byte up: one-way latency (half the
//              round trip) and bandwidth (size / one-way time)
//   allreduce  MPI_Allreduce (sum of doubles) over every rank, several vector sizes
//   alltoall   MPI_Alltoall, several block sizes per pair of ranks
//   stencil    a 2-D Jacobi sweep on a periodic grid split over a px x py process grid: each
//              iteration exchanges halos (width `halo` cells) with four neighbours
//              (Isend/Irecv), then updates the interior; time per iteration
//
// Each measurement runs at least --min-iters iterations and keeps going while rank 0 has
// used less than --budget seconds on it (rank 0 decides, and every rank follows, so the
// ranks never disagree on the count). Output: one JSON object per line on rank 0's stdout.
//
//   mpibench [--ops pingpong,allreduce,alltoall,stencil] [--budget 2.0] [--min-iters 5]
//            [--max-bytes 4194304] [--stencil-n 512] [--stencil-halo 8] [--stencil-iters 20]
//
// Built by mpi.py with mpicxx (not part of the CMake build: it needs Debian's Open MPI).
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Options {
  std::vector<std::string> ops = {"pingpong", "allreduce", "alltoall", "stencil"};
  double budget_s = 2.0;
  int min_iters = 5;
  std::size_t max_bytes = 4u << 20;
  int stencil_n = 512;     // cells per side of each rank's block
  int stencil_halo = 8;    // ghost-cell width exchanged per iteration
  int stencil_iters = 20;  // timed iterations (after 2 untimed ones)
};

int rank_ = 0;
int size_ = 1;

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "mpibench (rank %d): %s\n", rank_, why.c_str());
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::abort();
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) Fail("missing value after " + arg);
    const std::string value = argv[++i];
    if (arg == "--ops") o.ops = Split(value);
    else if (arg == "--budget") o.budget_s = std::stod(value);
    else if (arg == "--min-iters") o.min_iters = std::stoi(value);
    else if (arg == "--max-bytes") o.max_bytes = std::stoul(value);
    else if (arg == "--stencil-n") o.stencil_n = std::stoi(value);
    else if (arg == "--stencil-halo") o.stencil_halo = std::stoi(value);
    else if (arg == "--stencil-iters") o.stencil_iters = std::stoi(value);
    else Fail("unknown option " + arg);
  }
  return o;
}

// Rank 0 decides whether to run another iteration; every rank learns the decision, so the
// collectives and the ping-pong stay matched.
bool Continue(int done, double started, const Options& o) {
  int go = 0;
  if (rank_ == 0) go = done < o.min_iters || MPI_Wtime() - started < o.budget_s;
  MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return go != 0;
}

void Emit(const char* op, std::size_t bytes, int iters, double seconds_per_op,
          double bandwidth_bytes_per_s, const std::string& extra = "") {
  if (rank_ != 0) return;
  std::printf("{\"op\": \"%s\", \"bytes\": %zu, \"ranks\": %d, \"iters\": %d, "
              "\"us_per_op\": %.3f, \"mbytes_per_s\": %.3f%s}\n",
              op, bytes, size_, iters, seconds_per_op * 1e6, bandwidth_bytes_per_s / 1e6,
              extra.c_str());
  std::fflush(stdout);
}

// The byte at `i` of a message numbered `n`: every message's content differs, so a stale or
// misplaced buffer does not pass the check.
unsigned char Pattern(std::size_t i, int n) {
  return static_cast<unsigned char>((i * 131u + static_cast<unsigned>(n) * 7u + 13u) & 0xffu);
}

void PingPong(const Options& o) {
  if (size_ < 2) return;
  std::vector<std::size_t> sizes;
  for (std::size_t b = 1; b <= o.max_bytes; b *= 4) sizes.push_back(b);
  std::vector<unsigned char> buf(o.max_bytes);
  for (std::size_t bytes : sizes) {
    const int count = static_cast<int>(bytes);
    // One untimed round trip: connections and buffers are warm before timing starts.
    if (rank_ == 0) {
      MPI_Send(buf.data(), count, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), count, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank_ == 1) {
      MPI_Recv(buf.data(), count, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), count, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int iters = 0;
    double busy = 0.0;
    const double started = MPI_Wtime();
    while (Continue(iters, started, o)) {
      if (rank_ == 0) {
        for (std::size_t i = 0; i < bytes; ++i) buf[i] = Pattern(i, iters);
        const double t0 = MPI_Wtime();
        MPI_Send(buf.data(), count, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
        MPI_Recv(buf.data(), count, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        busy += MPI_Wtime() - t0;
        // Rank 1 sends back what it received with every byte incremented.
        for (std::size_t i = 0; i < bytes; ++i) {
          if (buf[i] != static_cast<unsigned char>(Pattern(i, iters) + 1u)) {
            Fail("ping-pong payload corrupted at byte " + std::to_string(i));
          }
        }
      } else if (rank_ == 1) {
        MPI_Recv(buf.data(), count, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (std::size_t i = 0; i < bytes; ++i) ++buf[i];
        MPI_Send(buf.data(), count, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
      }
      ++iters;
    }
    const double one_way = busy / iters / 2.0;
    Emit("pingpong", bytes, iters, one_way, static_cast<double>(bytes) / one_way);
  }
}

// Time per operation: the slowest rank's mean (a collective ends when its last rank does).
double SlowestMean(double busy, int iters) {
  double mean = busy / iters;
  double slowest = 0.0;
  MPI_Reduce(&mean, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  return slowest;
}

void Allreduce(const Options& o) {
  for (std::size_t bytes : {std::size_t{8}, std::size_t{1} << 10, std::size_t{64} << 10,
                            std::size_t{1} << 20}) {
    if (bytes > o.max_bytes) continue;
    const std::size_t n = bytes / sizeof(double);
    std::vector<double> in(n), out(n);
    MPI_Allreduce(in.data(), out.data(), static_cast<int>(n), MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    int iters = 0;
    double busy = 0.0;
    const double started = MPI_Wtime();
    while (Continue(iters, started, o)) {
      // Small integers: the sum is exact in any order of reduction.
      for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<double>((i + iters + rank_) % 97);
      const double t0 = MPI_Wtime();
      MPI_Allreduce(in.data(), out.data(), static_cast<int>(n), MPI_DOUBLE, MPI_SUM,
                    MPI_COMM_WORLD);
      busy += MPI_Wtime() - t0;
      for (std::size_t i = 0; i < n; ++i) {
        double expected = 0.0;
        for (int r = 0; r < size_; ++r) expected += static_cast<double>((i + iters + r) % 97);
        if (out[i] != expected) Fail("allreduce result wrong at element " + std::to_string(i));
      }
      ++iters;
    }
    const double t = SlowestMean(busy, iters);
    // Bus bandwidth as the OSU/NCCL tests report it: 2 (p-1)/p of the vector per rank.
    const double moved = 2.0 * (size_ - 1) / size_ * static_cast<double>(bytes);
    Emit("allreduce", bytes, iters, t, moved / t);
  }
}

void Alltoall(const Options& o) {
  for (std::size_t block : {std::size_t{64}, std::size_t{4} << 10, std::size_t{64} << 10,
                            std::size_t{256} << 10}) {
    if (block * static_cast<std::size_t>(size_) > o.max_bytes) continue;
    const std::size_t total = block * static_cast<std::size_t>(size_);
    std::vector<unsigned char> send(total), recv(total);
    const int count = static_cast<int>(block);
    MPI_Alltoall(send.data(), count, MPI_BYTE, recv.data(), count, MPI_BYTE, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    int iters = 0;
    double busy = 0.0;
    const double started = MPI_Wtime();
    while (Continue(iters, started, o)) {
      // Block for rank d carries (sender, destination, iteration) in its pattern.
      for (int d = 0; d < size_; ++d) {
        for (std::size_t i = 0; i < block; ++i) {
          send[static_cast<std::size_t>(d) * block + i] = Pattern(i, iters * 64 + rank_ * 8 + d);
        }
      }
      const double t0 = MPI_Wtime();
      MPI_Alltoall(send.data(), count, MPI_BYTE, recv.data(), count, MPI_BYTE, MPI_COMM_WORLD);
      busy += MPI_Wtime() - t0;
      for (int s = 0; s < size_; ++s) {
        for (std::size_t i = 0; i < block; ++i) {
          if (recv[static_cast<std::size_t>(s) * block + i] !=
              Pattern(i, iters * 64 + s * 8 + rank_)) {
            Fail("alltoall block from rank " + std::to_string(s) + " corrupted");
          }
        }
      }
      ++iters;
    }
    const double t = SlowestMean(busy, iters);
    // What each rank sends to others per operation.
    const double moved = static_cast<double>(block) * (size_ - 1);
    Emit("alltoall", block, iters, t, moved / t);
  }
}

// 2-D Jacobi on a periodic grid. Each rank owns an n x n block stored with a ghost frame of
// width h; one iteration exchanges the four edge strips (h cells deep; corners are not needed
// by the 5-point stencil), then updates the interior. The global checksum after the last
// iteration depends only on the grid size and the iteration count, so every mode must agree.
void Stencil(const Options& o) {
  int dims[2] = {0, 0};
  MPI_Dims_create(size_, 2, dims);
  const int periods[2] = {1, 1};
  MPI_Comm grid;
  MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &grid);
  int coords[2];
  MPI_Cart_coords(grid, rank_, 2, coords);
  int up, down, left, right;
  MPI_Cart_shift(grid, 0, 1, &up, &down);
  MPI_Cart_shift(grid, 1, 1, &left, &right);

  const int n = o.stencil_n;
  const int h = o.stencil_halo;
  const int w = n + 2 * h;  // row length with ghosts
  auto at = [w](int r, int c) { return static_cast<std::size_t>(r) * static_cast<std::size_t>(w) +
                                       static_cast<std::size_t>(c); };
  std::vector<double> a(static_cast<std::size_t>(w) * static_cast<std::size_t>(w), 0.0);
  std::vector<double> b = a;
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const int gr = coords[0] * n + r;
      const int gc = coords[1] * n + c;
      a[at(r + h, c + h)] = static_cast<double>((gr * 31 + gc * 17) % 101);
    }
  }
  MPI_Datatype column;  // h cells wide, n rows tall
  MPI_Type_vector(n, h, w, MPI_DOUBLE, &column);
  MPI_Type_commit(&column);
  MPI_Datatype row;  // h rows, n cells wide
  MPI_Type_vector(h, n, w, MPI_DOUBLE, &row);
  MPI_Type_commit(&row);

  auto exchange = [&](std::vector<double>& g) {
    MPI_Request req[8];
    // Receive into the ghost strips; send the interior strips next to each edge.
    MPI_Irecv(&g[at(0, h)], 1, row, up, 10, grid, &req[0]);
    MPI_Irecv(&g[at(n + h, h)], 1, row, down, 11, grid, &req[1]);
    MPI_Irecv(&g[at(h, 0)], 1, column, left, 12, grid, &req[2]);
    MPI_Irecv(&g[at(h, n + h)], 1, column, right, 13, grid, &req[3]);
    MPI_Isend(&g[at(n, h)], 1, row, down, 10, grid, &req[4]);
    MPI_Isend(&g[at(h, h)], 1, row, up, 11, grid, &req[5]);
    MPI_Isend(&g[at(h, n)], 1, column, right, 12, grid, &req[6]);
    MPI_Isend(&g[at(h, h)], 1, column, left, 13, grid, &req[7]);
    MPI_Waitall(8, req, MPI_STATUSES_IGNORE);
  };
  auto sweep = [&](const std::vector<double>& from, std::vector<double>& to) {
    for (int r = h; r < n + h; ++r) {
      for (int c = h; c < n + h; ++c) {
        to[at(r, c)] = 0.25 * (from[at(r - 1, c)] + from[at(r + 1, c)] + from[at(r, c - 1)] +
                               from[at(r, c + 1)]);
      }
    }
  };

  const int warmup = 2;
  double comm = 0.0;
  double total = 0.0;
  for (int it = 0; it < warmup + o.stencil_iters; ++it) {
    const double t0 = MPI_Wtime();
    exchange(a);
    const double t1 = MPI_Wtime();
    sweep(a, b);
    std::swap(a, b);
    if (it >= warmup) {
      comm += t1 - t0;
      total += MPI_Wtime() - t0;
    }
  }
  double local = 0.0;
  for (int r = h; r < n + h; ++r) {
    for (int c = h; c < n + h; ++c) local += a[at(r, c)];
  }
  double checksum = 0.0;
  MPI_Reduce(&local, &checksum, 1, MPI_DOUBLE, MPI_SUM, 0, grid);
  const double per_iter = SlowestMean(total, o.stencil_iters);
  const double comm_per_iter = SlowestMean(comm, o.stencil_iters);
  // Halo bytes a rank sends per iteration (four strips of h x n doubles).
  const std::size_t halo_bytes = 4u * static_cast<std::size_t>(h) * static_cast<std::size_t>(n) *
                                 sizeof(double);
  char extra[256];
  std::snprintf(extra, sizeof extra,
                ", \"grid\": \"%dx%d ranks, %dx%d cells each, halo %d\", \"comm_us_per_op\": "
                "%.3f, \"checksum\": %.6f",
                dims[0], dims[1], n, n, h, comm_per_iter * 1e6, checksum);
  Emit("stencil", halo_bytes, o.stencil_iters, per_iter,
       static_cast<double>(halo_bytes) / comm_per_iter, extra);
  MPI_Type_free(&column);
  MPI_Type_free(&row);
  MPI_Comm_free(&grid);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  const Options o = Parse(argc, argv);
  for (const std::string& op : o.ops) {
    if (op == "pingpong") PingPong(o);
    else if (op == "allreduce") Allreduce(o);
    else if (op == "alltoall") Alltoall(o);
    else if (op == "stencil") Stencil(o);
    else Fail("unknown operation " + op);
  }
  MPI_Finalize();
  return 0;
}
