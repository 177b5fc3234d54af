// Memory for the arrays the kernels hand back, for inference's chunk of gates and for the
// weights packed for the recurrent products.
//
// Every block starts on a 64-byte boundary: Eigen handles the unaligned head of an
// element-wise loop with scalar code, which rounds differently from its SIMD code, so with
// every buffer aligned the same way results repeat bit for bit.
//
// Freed blocks of 64 KB up to a limit (1 GB unless set_cache_limit changes it) are kept, up to
// the limit in all (the oldest go first), and handed out again for a request of their size or a
// smaller one they exceed by at most an eighth. A kept block that is not taken again while 1024
// more come back is handed back too (see kMaxIdle). Without the cache, the C library hands many
// blocks back to the system (glibc trims the top of its heap and maps large blocks afresh), and
// the first write to each page of the next call's fresh block costs a page fault: a small call
// spent more than half its time in them (bench/NOTES.md, "The block cache").
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace fastrnn {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kDefaultCacheLimit = std::size_t(1) << 30;

// At least `bytes` bytes (a zero-byte request gets a block too); throws std::bad_alloc.
void* allocate(std::size_t bytes);
// Takes back a block from allocate (null is ignored).
void release(void* p) noexcept;
// Bytes kept for reuse, and handing them back to the C library.
std::size_t cached_bytes();
void empty_cache();
// The most bytes kept; a lower limit hands the oldest blocks back at once, 0 keeps none.
void set_cache_limit(std::size_t bytes);
std::size_t cache_limit();

// An uninitialised (n,) buffer of T from allocate, released when it goes out of scope; or,
// made without a size, none (data() is null) until a sized one is moved in.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t n) : p_(static_cast<T*>(allocate(checked_bytes(n)))) {}
  ~Buffer() { release(p_); }
  Buffer(Buffer&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  Buffer& operator=(Buffer&& other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  T* data() const { return p_; }

 private:
  static std::size_t checked_bytes(std::size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return n * sizeof(T);
  }
  T* p_ = nullptr;
};

}  // namespace fastrnn
