// The block cache of memory.h.
#include "memory.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>
#ifdef _WIN32
#include <malloc.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifndef _WIN32
#include <pthread.h>
#endif

namespace fastrnn {
namespace {

// Blocks below this size come from the C library's free lists without page faults: not kept.
constexpr std::size_t kMinCached = std::size_t(64) << 10;

void* system_allocate(std::size_t bytes) {
#ifdef _WIN32
  return _aligned_malloc(bytes, kAlign);
#else
#ifdef __linux__
  // A fresh multi-MB block is written once, page by page; with 4 KB pages the kernel takes a
  // fault on each (what made T = 10000 grow faster than T). Aligned to 2 MB and marked for
  // transparent huge pages it takes 512x fewer faults and fewer TLB misses. Where the system
  // declines (THP set to "never"), this is plain memory.
  constexpr std::size_t kHuge = std::size_t(2) << 20;
  if (bytes >= 2 * kHuge) {
    void* p = nullptr;
    if (posix_memalign(&p, kHuge, bytes) != 0) return nullptr;
    madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);
    return p;
  }
#endif
  void* p = nullptr;
  return posix_memalign(&p, kAlign, bytes) == 0 ? p : nullptr;
#endif
}

void system_free(void* p) {
#ifdef _WIN32
  _aligned_free(p);
#else
  std::free(p);
#endif
}

// A kept block not taken again before kMaxIdle more blocks have come back is handed back: a
// loop of calls of one shape takes its blocks back every step (a deep model's step releases
// about 35 blocks a bidirectional layer), while calls whose shapes keep changing would
// otherwise fill the cache up to its limit with blocks never used again. So at most kMaxIdle
// blocks are kept, and room for them (plus the one just freed) is reserved up front, so that
// release never allocates and never throws.
constexpr std::size_t kMaxIdle = 1024;

struct Kept {
  void* p;
  std::size_t bytes;
  std::size_t released;  // the count of blocks come back to the cache, this one included
};

struct Cache {
  Cache() { kept.reserve(kMaxIdle + 1); }
  std::mutex mutex;
  std::unordered_map<void*, std::size_t> sizes;  // every block handed out
  std::vector<Kept> kept;                        // freed blocks, oldest first
  std::size_t kept_bytes = 0;
  std::size_t releases = 0;  // blocks come back to the cache so far
  std::size_t limit = kDefaultCacheLimit;
};

// Never destroyed: NumPy may free arrays (and so blocks) during interpreter shutdown, after
// static destructors have run. A fork waits until no thread holds the mutex, so the child
// never inherits it locked.
Cache& cache() {
  static Cache* c = [] {
    auto* made = new Cache;
#ifndef _WIN32
    pthread_atfork([] { cache().mutex.lock(); }, [] { cache().mutex.unlock(); },
                   [] { cache().mutex.unlock(); });
#endif
    return made;
  }();
  return *c;
}
// Made when the module loads, not at a first call that a fork could interrupt.
const bool kCacheMade = (cache(), true);

// A kept block for a request of `bytes`, taken out of the cache, or null; `bytes` becomes its
// size. One of that size if there is one (the newest, still in cache), so that the same calls
// repeated get their blocks back exactly; else the longest kept of those larger by at most an
// eighth, so that calls whose sizes differ a little (batches of varying length) use each
// other's. Not the smallest of those: a loop of one shape whose blocks differ a little in size
// would then take one step's blocks for another's and leave some idle until they go back.
void* take_kept(Cache& c, std::size_t& bytes) {
  const std::size_t most = bytes + bytes / 8;
  auto best = c.kept.end();
  for (auto it = c.kept.begin(); it != c.kept.end(); ++it)  // oldest first: ends on the newest
    if (it->bytes == bytes) best = it;
  for (auto it = c.kept.begin(); it != c.kept.end() && best == c.kept.end(); ++it)
    if (it->bytes > bytes && it->bytes <= most) best = it;
  if (best == c.kept.end()) return nullptr;
  void* p = best->p;
  bytes = best->bytes;
  c.kept_bytes -= bytes;
  c.kept.erase(best);
  return p;
}

// Records a block handed out; if that fails the block goes back and the error on.
void* track(Cache& c, void* p, std::size_t bytes) {
  try {
    c.sizes.emplace(p, bytes);
  } catch (...) {
    system_free(p);
    throw;
  }
  return p;
}

// Hands the oldest blocks back until those kept fit the limits. The caller holds the mutex.
void evict(Cache& c) {
  std::size_t evicted = 0;
  auto over = [&] { return c.kept_bytes > c.limit || c.releases - c.kept[evicted].released >= kMaxIdle; };
  for (; evicted < c.kept.size() && over(); ++evicted) {
    system_free(c.kept[evicted].p);
    c.kept_bytes -= c.kept[evicted].bytes;
  }
  c.kept.erase(c.kept.begin(), c.kept.begin() + static_cast<std::ptrdiff_t>(evicted));
}

}  // namespace

void* allocate(std::size_t bytes) {
  if (bytes > SIZE_MAX - kAlign) throw std::bad_alloc();
  bytes = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (void* p = take_kept(c, bytes)) return track(c, p, bytes);
  }
  void* p = system_allocate(bytes);
  if (!p) {  // kept blocks of other sizes may be what stands in the way
    empty_cache();
    p = system_allocate(bytes);
  }
  if (!p) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(c.mutex);
  return track(c, p, bytes);
}

void release(void* p) noexcept {
  if (!p) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.sizes.find(p);
  const std::size_t bytes = it->second;
  c.sizes.erase(it);
  if (bytes < kMinCached || bytes > c.limit) return system_free(p);
  c.kept.push_back({p, bytes, ++c.releases});  // within the reserved room
  c.kept_bytes += bytes;
  evict(c);
}

std::size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.kept_bytes;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& block : c.kept) system_free(block.p);
  c.kept.clear();  // keeps the reserved room
  c.kept_bytes = 0;
}

void set_cache_limit(std::size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = bytes;
  evict(c);
}

std::size_t cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.limit;
}

}  // namespace fastrnn
