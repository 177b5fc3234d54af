// Memory for the arrays the kernels hand back and the large buffers they work in.
//
// Every block starts on a 64-byte boundary: Eigen handles the unaligned head of an
// element-wise loop with scalar code, which rounds differently from its SIMD code, so with
// every buffer aligned the same way results repeat bit for bit.
//
// Freed blocks are kept, up to kCacheBytes in all, and handed out again for a request of the
// same size. Without that, the C library gives most of them straight back to the system
// (glibc maps blocks over 128 KB afresh and trims its heap), and the first write to each page
// of the next call's fresh block costs a page fault: a small call spent more than half its
// time in them (rnn_tanh 50x32x32x64 inference, 0.46 ms; 0.19 ms with its blocks reused).
#pragma once

#include <cstddef>

namespace fastrnn {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kCacheBytes = std::size_t(64) << 20;

// At least `bytes` bytes (a zero-byte request gets a block too); throws std::bad_alloc.
void* allocate(std::size_t bytes);
// Takes back a block from allocate (null is ignored).
void release(void* p);
// Bytes kept for reuse, and giving them back to the system.
std::size_t cached_bytes();
void empty_cache();

// An uninitialised (n,) buffer of T from allocate, released when it goes out of scope.
template <typename T>
class Buffer {
 public:
  explicit Buffer(std::size_t n) : p_(static_cast<T*>(allocate(n * sizeof(T)))) {}
  ~Buffer() { release(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() const { return p_; }

 private:
  T* p_;
};

}  // namespace fastrnn
