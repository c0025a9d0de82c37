// CPU kernels for the packed ModernBERT encoder (encoder/modernbert.py):
//
// * rope: rotary position embedding of queries and keys in one pass (torch needs four).
// * varlen_attention: exact attention over a packed token stream, per sequence, global
//   (the whole sequence) or banded (|i - j| <= window), flash-style (online softmax, no
//   S x S matrix), with the two matmuls on AMX through ATen's batch-reduce GEMM
//   (at::native::cpublas::brgemm, the ukernel torch's own CPU flash attention uses).
//   Keys and values are packed once per call into the VNNI layout AMX reads, for the
//   whole stream: every query block then reads its key range in place, where torch's
//   SDPA re-packs keys per call and needs a padded batch and a mask for local layers.
//   The online softmax takes one pass over the scores of every key step after a row's first
//   (see kMaxSum).
//
// rope: bf16 and float32. varlen_attention: bf16 only (the path where AMX pays); float32
// models keep torch's SDPA.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace {

using bf16 = at::BFloat16;

inline float bf2f(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even (what torch's .to(bfloat16) does); NaN stays NaN.
inline uint16_t f2bf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// 2^t for t <= 16 to ~2 ulp (scalar): 2^n * 2^f, n = round(t), |f| <= 1/2, 2^f by a
// degree-6 polynomial; t below -126 flushes to 0.
inline float exp2_scalar(float t) {
  t = std::max(t, -126.0f);
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  const float f = t - n;
  float p = 1.5403530393381606e-4f;
  p = p * f + 1.3333558146428443e-3f;
  p = p * f + 9.6181291076284772e-3f;
  p = p * f + 5.5504108664821580e-2f;
  p = p * f + 2.4022650695910071e-1f;
  p = p * f + 6.9314718055994531e-1f;
  p = p * f + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// The online softmax, one row of one key step at a time. Each query row keeps a reference
// ref (in log2 units, of scaled scores): its first step's maximum. Later steps compute
// p = 2^(s * c - ref) against that same reference in one pass, with no maximum pass and no
// rescaling of the accumulated output; only when a step's p grow past kMaxSum (2^16: far
// from overflow in float32 and bf16, which share float32's exponent range) is the row
// rebased on its new maximum. Partial sums of p stay in 16 lanes per row until the row is
// done.
constexpr float kMaxSum = 65536.0f;

#if defined(__AVX512F__) && defined(__AVX512BF16__)
inline float row_max_of(const float* s, int64_t n) {
  // Four accumulators: one would wait on the max latency at every load.
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = lowest, m1 = lowest, m2 = lowest, m3 = lowest;
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + c));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + c + 16));
    m2 = _mm512_max_ps(m2, _mm512_loadu_ps(s + c + 32));
    m3 = _mm512_max_ps(m3, _mm512_loadu_ps(s + c + 48));
  }
  for (; c + 16 <= n; c += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + c));
  if (c < n) {
    const __mmask16 k = __mmask16((1u << (n - c)) - 1u);
    m1 = _mm512_mask_max_ps(m1, k, m1, _mm512_maskz_loadu_ps(k, s + c));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

// 2^t: n = round(t) through the 1.5 * 2^23 trick (for |t| >= 2^22, t is already an
// integer and n = t), 2^f for |f| <= 1/2 by a degree-3 polynomial (relative error < 8e-5,
// far below bf16's 2^-9 on the probabilities it feeds), scaled by 2^n with scalef (which
// flushes t below -150 to 0 and sends t above 128 to inf).
inline __m512 exp2_of(__m512 t) {
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(5.509099732777774e-2f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4260483719916673e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.932758706906337e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.99928881684641e-1f));
  return _mm512_scalef_ps(p, n);
}

// p = 2^(s * c - ref) as bf16, its sum added to sum16 (16 partial sums). False (sum16 left
// as it was) where a partial sum passes kMaxSum, which any p above it (and any overflow
// to inf) implies: the caller rebases the row and calls again. Testing the 16 sums rather
// than each p costs nothing per score; a large sum of moderate p rebases too, harmlessly.
inline bool exp_row(const float* s, uint16_t* p, int64_t n, float c, float ref, float* sum16) {
  const __m512 vc = _mm512_set1_ps(c), vref = _mm512_set1_ps(ref);
  __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e0 = exp2_of(_mm512_fmsub_ps(_mm512_loadu_ps(s + i), vc, vref));
    const __m512 e1 = exp2_of(_mm512_fmsub_ps(_mm512_loadu_ps(s + i + 16), vc, vref));
    sum0 = _mm512_add_ps(sum0, e0);
    sum1 = _mm512_add_ps(sum1, e1);
    _mm512_storeu_si512(p + i, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(k, exp2_of(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, s + i), vc, vref)));
    sum0 = _mm512_add_ps(sum0, e);
    _mm256_mask_storeu_epi16(p + i, k, (__m256i)_mm512_cvtneps_pbh(e));
  }
  const __m512 sum = _mm512_add_ps(sum0, sum1);
  if (_mm512_cmp_ps_mask(sum, _mm512_set1_ps(kMaxSum), _CMP_GT_OQ) != 0) return false;
  _mm512_storeu_ps(sum16, _mm512_add_ps(_mm512_loadu_ps(sum16), sum));
  return true;
}

inline float sum_of(const float* sum16) { return _mm512_reduce_add_ps(_mm512_loadu_ps(sum16)); }
#else
inline float row_max_of(const float* s, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < n; ++c) m = std::max(m, s[c]);
  return m;
}

inline bool exp_row(const float* s, uint16_t* p, int64_t n, float c, float ref, float* sum16) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp2_scalar(std::min(s[i] * c - ref, 17.0f));  // past kMaxSum: rebased
    sum += e;
    p[i] = f2bf(e);
  }
  if (sum > kMaxSum) return false;
  sum16[0] += sum;
  return true;
}

inline float sum_of(const float* sum16) {
  float s = 0.0f;
  for (int i = 0; i < 16; ++i) s += sum16[i];
  return s;
}
#endif

// Softmax of one query row over one key step: scores srow[vlo, vhi) (the keys the row sees)
// into bf16 probabilities prow[0, n) (zeros elsewhere) against the row's reference ref
// (its first step's maximum, set here while still -inf), partial sums into sum16. A rebase
// rescales the row's output so far, arow (D floats), when acc_live.
inline void softmax_row(const float* srow, uint16_t* prow, int64_t vlo, int64_t vhi, int64_t n, float c, float& ref,
                        float* sum16, float* arow, int64_t D, bool acc_live) {
  if (vhi <= vlo) {  // no key of this row in this step: a zero row of P adds nothing
    std::fill(prow, prow + n, uint16_t(0));
    return;
  }
  std::fill(prow, prow + vlo, uint16_t(0));
  std::fill(prow + vhi, prow + n, uint16_t(0));
  if (ref == -std::numeric_limits<float>::infinity()) ref = row_max_of(srow + vlo, vhi - vlo) * c;
  if (exp_row(srow + vlo, prow + vlo, vhi - vlo, c, ref, sum16)) return;
  // p past kMaxSum (a score well above the reference): rebase the row on the new maximum,
  // rescaling what it has accumulated so far.
  const float new_ref = row_max_of(srow + vlo, vhi - vlo) * c;
  const float corr = exp2_scalar(ref - new_ref);
  for (int l = 0; l < 16; ++l) sum16[l] *= corr;
  if (acc_live) {
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) arow[d] *= corr;
  }
  ref = new_ref;
  exp_row(srow + vlo, prow + vlo, vhi - vlo, c, ref, sum16);
}

// ----------------------------------------------------------------------------- RoPE

template <typename T>
struct Io;
template <>
struct Io<float> {
  static float ld(const float* p) { return *p; }
  static void st(float* p, float v) { *p = v; }
};
template <>
struct Io<uint16_t> {
  static float ld(const uint16_t* p) { return bf2f(*p); }
  static void st(uint16_t* p, float v) { *p = f2bf(v); }
};

template <typename T>
void rope_impl(const T* src, int64_t src_row, T* dst, int64_t dst_row, const float* cos, const float* sin,
               int64_t n_tok, int64_t vectors, int64_t D) {
  const int64_t half = D / 2;
  at::parallel_for(0, n_tok, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      for (int64_t h = 0; h < vectors; ++h) {
        const T* x = src + t * src_row + h * D;
        T* y = dst + t * dst_row + h * D;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = Io<T>::ld(x + i), x2 = Io<T>::ld(x + i + half);
          Io<T>::st(y + i, x1 * c[i] - x2 * s[i]);
          Io<T>::st(y + i + half, x2 * c[i] + x1 * s[i]);
        }
      }
    }
  });
}

// ------------------------------------------------------------------------ attention

struct Shape {
  int64_t T, H, D, Tp;  // tokens, heads, head size, padded row length of the packed keys
};

// Keys as the B operand of Q K^T, VNNI (pairs along D): kp[h][d / 2][j][d % 2], row length Tp.
// A (d, d + 1) pair is 4 bytes in both layouts: per head this is a transpose of 32-bit words.
// pack_key_rows moves n <= 16 tokens (rows of `in`, row_words apart) of one head to
// out[p * Tp + i], out pointing at the head's first token of the block.
inline void pack_key_rows(const uint32_t* in, int64_t row_words, int64_t n, int64_t pairs, uint32_t* out,
                          int64_t Tp) {
  int64_t p0 = 0;
#if defined(__AVX512F__)
  if (n == 16) {  // 16 x 16 words at a time, transposed in registers
    for (; p0 + 16 <= pairs; p0 += 16) {
      __m512i r[16], a[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(in + i * row_words + p0);
      for (int i = 0; i < 16; i += 2) {
        a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {  // r[i] lane L: word 4L + m of rows i .. i + 3
        r[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
      }
      for (int m = 0; m < 4; ++m) {  // gather lane L of r[m], r[4 + m], r[8 + m], r[12 + m]
        const __m512i c0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x88), d0 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x88);
        const __m512i c1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xdd), d1 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xdd);
        _mm512_storeu_si512(out + (p0 + m) * Tp, _mm512_shuffle_i32x4(c0, d0, 0x88));
        _mm512_storeu_si512(out + (p0 + 8 + m) * Tp, _mm512_shuffle_i32x4(c0, d0, 0xdd));
        _mm512_storeu_si512(out + (p0 + 4 + m) * Tp, _mm512_shuffle_i32x4(c1, d1, 0x88));
        _mm512_storeu_si512(out + (p0 + 12 + m) * Tp, _mm512_shuffle_i32x4(c1, d1, 0xdd));
      }
    }
  }
#endif
  for (int64_t p = p0; p < pairs; ++p)
    for (int64_t i = 0; i < n; ++i) out[p * Tp + i] = in[i * row_words + p];
}

// Values as the B operand of P V, VNNI (pairs along tokens): vp[h][j / 2][d][j % 2].
// pack_value_pair interleaves the rows of tokens j and j + 1 (r1 null past the end: zeros).
inline void pack_value_pair(const uint16_t* r0, const uint16_t* r1, uint16_t* out, int64_t D) {
  int64_t d = 0;
#if defined(__AVX512BW__)
  if (r1 != nullptr) {  // interleave 16 + 16 values per shuffle
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                        39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (; d + 32 <= D; d += 32) {
      const __m512i a = _mm512_loadu_si512(r0 + d), b = _mm512_loadu_si512(r1 + d);
      _mm512_storeu_si512(out + 2 * d, _mm512_permutex2var_epi16(a, lo, b));
      _mm512_storeu_si512(out + 2 * d + 32, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
#endif
  for (; d < D; ++d) {
    out[2 * d] = r0[d];
    out[2 * d + 1] = r1 ? r1[d] : uint16_t(0);
  }
}

// Zeros for the padding tokens [T, Tp) of both packed buffers.
void zero_padding(uint16_t* kp, uint16_t* vp, const Shape& s) {
  uint32_t* k32 = reinterpret_cast<uint32_t*>(kp);
  for (int64_t hp = 0; hp < s.H * s.D / 2; ++hp) std::fill(k32 + hp * s.Tp + s.T, k32 + (hp + 1) * s.Tp, 0u);
  const int64_t first_pair = (s.T + 1) / 2;  // an odd T's last pair is written with its zero half
  for (int64_t h = 0; h < s.H; ++h)
    std::fill(vp + (h * s.Tp / 2 + first_pair) * 2 * s.D, vp + (h + 1) * s.Tp / 2 * 2 * s.D, uint16_t(0));
}

// Keys and values of the whole stream into the packed buffers (keys already rotated).
void pack_keys_values(const uint16_t* k, int64_t k_row, const uint16_t* v, int64_t v_row, uint16_t* kp,
                      uint16_t* vp, const Shape& s) {
  const int64_t pairs = s.D / 2, n_tb = (s.T + 15) / 16;
  at::parallel_for(0, s.H * n_tb, 16, [&](int64_t begin, int64_t end) {
    for (int64_t hb = begin; hb < end; ++hb) {
      const int64_t h = hb / n_tb, j0 = (hb % n_tb) * 16, n = std::min<int64_t>(16, s.T - j0);
      pack_key_rows(reinterpret_cast<const uint32_t*>(k + j0 * k_row + h * s.D), k_row / 2, n, pairs,
                    reinterpret_cast<uint32_t*>(kp) + h * pairs * s.Tp + j0, s.Tp);
      for (int64_t j = j0; j < j0 + n; j += 2) {
        const uint16_t* r0 = v + j * v_row + h * s.D;
        pack_value_pair(r0, j + 1 < s.T ? r0 + v_row : nullptr, vp + (h * s.Tp / 2 + j / 2) * 2 * s.D, s.D);
      }
    }
  });
  zero_padding(kp, vp, s);
}

// Row length of the packed keys: even, and not a multiple of 4 KiB in bytes, so that the
// 16 rows an AMX tile load reads do not all fall into the same cache set.
inline int64_t padded_tokens(int64_t T) { return (T + 15) / 16 * 16 + 16; }

struct Block {
  int64_t q0, q1, seq_lo, seq_hi, head;  // query rows [q0, q1) of sequence [seq_lo, seq_hi)
};

}  // namespace

void rope(torch::Tensor src, torch::Tensor dst, torch::Tensor cos, torch::Tensor sin) {
  TORCH_CHECK(src.dim() == 4 && dst.dim() == 4 && src.size(0) == dst.size(0) && src.size(1) >= dst.size(1) &&
                  src.size(2) == dst.size(2) && src.size(3) == dst.size(3) && src.size(3) % 2 == 0,
              "rope: src (T, >= n, H, D) and dst (T, n, H, D) expected, D even");
  TORCH_CHECK(src.stride(3) == 1 && dst.stride(3) == 1 && src.stride(2) == src.size(3) && dst.stride(2) == dst.size(3),
              "rope: rows must be contiguous in (H, D)");
  TORCH_CHECK(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat && cos.is_contiguous() &&
                  sin.is_contiguous(), "rope: contiguous float32 cos / sin tables expected");
  TORCH_CHECK(src.scalar_type() == dst.scalar_type(), "rope: dtype mismatch");
  TORCH_CHECK(src.device().is_cpu() && dst.device().is_cpu(), "rope: CPU tensors expected");
  TORCH_CHECK(cos.size(0) == src.size(0) && cos.size(1) == src.size(3) / 2 && sin.sizes() == cos.sizes(),
              "rope: cos / sin must be (T, D / 2)");
  const int64_t n = src.size(0), vectors = dst.size(1) * dst.size(2), D = src.size(3);
  TORCH_CHECK(dst.stride(1) == dst.size(2) * D && src.stride(1) == src.size(2) * D, "rope: (n, H, D) must be dense");
  if (src.scalar_type() == at::kBFloat16) {
    rope_impl<uint16_t>(reinterpret_cast<const uint16_t*>(src.data_ptr()), src.stride(0),
                        reinterpret_cast<uint16_t*>(dst.data_ptr()), dst.stride(0), cos.data_ptr<float>(),
                        sin.data_ptr<float>(), n, vectors, D);
  } else {
    TORCH_CHECK(src.scalar_type() == at::kFloat, "rope: bfloat16 or float32");
    rope_impl<float>(src.data_ptr<float>(), src.stride(0), dst.data_ptr<float>(), dst.stride(0),
                     cos.data_ptr<float>(), sin.data_ptr<float>(), n, vectors, D);
  }
}

int64_t packed_buffer_numel(int64_t T, int64_t H, int64_t D) { return H * D * padded_tokens(T); }

bool amx_attention_supported() { return at::native::cpublas::could_pack(at::kBFloat16); }

// q, k, v: (T, H, D) bf16 views whose rows may be strided (slices of a fused qkv buffer),
// contiguous in (H, D). cu_seqlens: int64 (num_seqs + 1,), on CPU. window < 0: global.
// out: (T, H, D) bf16, contiguous. Returns out.
// key_buf, value_buf: bf16 scratch of at least packed_buffer_numel(T, H, D) elements each,
// reused across calls (fresh allocations of this size are page-faulted in every time).
torch::Tensor varlen_attention(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor cu_seqlens,
                               int64_t window, double scale, torch::Tensor out, int64_t block_q, int64_t block_k,
                               torch::Tensor key_buf, torch::Tensor value_buf) {
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 && k.scalar_type() == at::kBFloat16 &&
                  v.scalar_type() == at::kBFloat16 && out.scalar_type() == at::kBFloat16,
              "varlen_attention: bfloat16 tensors expected");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu() && out.device().is_cpu(),
              "varlen_attention: CPU tensors expected");
  TORCH_CHECK(q.dim() == 3 && k.sizes() == q.sizes() && v.sizes() == q.sizes() && out.sizes() == q.sizes(),
              "varlen_attention: q, k, v, out must all be (T, H, D)");
  for (const auto& t : {q, k, v}) {
    TORCH_CHECK(t.stride(2) == 1 && t.stride(1) == t.size(2), "varlen_attention: rows must be dense in (H, D)");
  }
  TORCH_CHECK(out.is_contiguous(), "varlen_attention: out must be contiguous");
  TORCH_CHECK(cu_seqlens.scalar_type() == at::kLong && cu_seqlens.is_contiguous() && cu_seqlens.device().is_cpu(),
              "varlen_attention: cu_seqlens must be a contiguous int64 CPU tensor");
  TORCH_CHECK(block_q > 0 && block_k > 0 && block_k % 2 == 0, "varlen_attention: bad block sizes");
  Shape s{q.size(0), q.size(1), q.size(2), 0};
  s.Tp = padded_tokens(s.T);
  TORCH_CHECK(s.D % 2 == 0, "varlen_attention: even head size expected");
  const int64_t* cu = cu_seqlens.data_ptr<int64_t>();
  const int64_t n_seqs = cu_seqlens.numel() - 1;
  TORCH_CHECK(n_seqs >= 1 && cu[0] == 0 && cu[n_seqs] == s.T, "varlen_attention: cu_seqlens must go from 0 to T");

  const int64_t packed_numel = s.H * s.D * s.Tp;
  for (const auto& b : {key_buf, value_buf}) {
    TORCH_CHECK(b.scalar_type() == at::kBFloat16 && b.is_contiguous() && b.numel() >= packed_numel,
                "varlen_attention: key_buf / value_buf must be contiguous bf16 with >= ", packed_numel, " elements");
  }
  torch::Tensor kp = key_buf, vp = value_buf;
  pack_keys_values(reinterpret_cast<const uint16_t*>(k.data_ptr()), k.stride(0),
                   reinterpret_cast<const uint16_t*>(v.data_ptr()), v.stride(0),
                   reinterpret_cast<uint16_t*>(kp.data_ptr()), reinterpret_cast<uint16_t*>(vp.data_ptr()), s);

  std::vector<Block> blocks;
  for (int64_t i = 0; i < n_seqs; ++i) {
    TORCH_CHECK(cu[i + 1] > cu[i], "varlen_attention: empty sequence in cu_seqlens");
    // Head-major: consecutive blocks of a thread reuse the same head's keys and values in cache.
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t q0 = cu[i]; q0 < cu[i + 1]; q0 += block_q)
        blocks.push_back({q0, std::min(q0 + block_q, cu[i + 1]), cu[i], cu[i + 1], h});
  }

  const bf16* qd = q.data_ptr<at::BFloat16>();
  const bf16* kpd = kp.data_ptr<at::BFloat16>();
  const bf16* vpd = vp.data_ptr<at::BFloat16>();
  uint16_t* od = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t q_row = q.stride(0), D = s.D;
  const float c = float(scale) * 1.44269504088896341f;  // scores to log2 units
  const float neg_inf = -std::numeric_limits<float>::infinity();
  // Local blocks read one key band: the block plus the window on both sides (+2 to keep
  // pairs aligned); global blocks read their sequence in steps of block_k.
  const int64_t kv_step = window >= 0 ? block_q + 2 * window + 2 : block_k;

  // Thread t takes blocks t, t + n, t + 2n, ...: long and short sequences spread evenly.
  const int64_t n_blocks = int64_t(blocks.size());
  const int64_t n_threads = std::min<int64_t>(at::get_num_threads(), n_blocks);
  at::parallel_for(0, n_threads, 1, [&](int64_t t_begin, int64_t t_end) {
    // Per-thread scratch, kept between calls (no page faults per call).
    thread_local std::vector<float> scores, acc, row_ref, row_sum;
    thread_local std::vector<bf16> probs;
    const size_t need = block_q * std::max({kv_step, D, int64_t(16)});
    for (auto* buf : {&scores, &acc, &row_ref, &row_sum}) buf->resize(std::max(buf->size(), need));
    probs.resize(std::max(probs.size(), need));
    for (int64_t b = 0; b < n_blocks; ++b) {
      if (b % n_threads < t_begin || b % n_threads >= t_end) continue;
      const Block& blk = blocks[b];
      const int64_t m = blk.q1 - blk.q0;
      int64_t lo = blk.seq_lo, hi = blk.seq_hi;  // keys any row of the block may see
      if (window >= 0) {
        lo = std::max(lo, blk.q0 - window);
        hi = std::min(hi, blk.q1 + window);
      }
      lo &= ~int64_t(1);  // VNNI pairs start at even rows
      std::fill(row_ref.begin(), row_ref.begin() + m, neg_inf);
      std::fill(row_sum.begin(), row_sum.begin() + 16 * m, 0.0f);
      const bf16* qb = qd + blk.q0 * q_row + blk.head * D;
      const bf16* kb = kpd + blk.head * (D / 2) * s.Tp * 2;
      const bf16* vb = vpd + blk.head * (s.Tp / 2) * D * 2;
      bool first = true;
      for (int64_t j0 = lo; j0 < hi; j0 += kv_step) {
        const int64_t j1 = std::min(j0 + kv_step, hi);
        const int64_t nk = std::min((j1 - j0 + 1) & ~int64_t(1), s.Tp - j0);  // even, inside the padding
        at::native::cpublas::brgemm(m, nk, D, q_row, s.Tp, kv_step, false, qb, kb + j0 * 2, scores.data(), true);
        for (int64_t r = 0; r < m; ++r) {
          const int64_t i = blk.q0 + r;
          int64_t vlo = blk.seq_lo, vhi = blk.seq_hi;
          if (window >= 0) {
            vlo = std::max(vlo, i - window);
            vhi = std::min(vhi, i + window + 1);
          }
          softmax_row(scores.data() + r * kv_step, reinterpret_cast<uint16_t*>(probs.data()) + r * kv_step,
                      std::max(vlo, j0) - j0, std::min(vhi, j1) - j0, nk, c, row_ref[r], row_sum.data() + 16 * r,
                      acc.data() + r * D, D, !first);
        }
        at::native::cpublas::brgemm(m, D, nk, kv_step, D, D, !first, probs.data(), vb + j0 * D, acc.data(), true);
        first = false;
      }
      for (int64_t r = 0; r < m; ++r) {
        const float inv = 1.0f / sum_of(row_sum.data() + 16 * r);
        const float* arow = acc.data() + r * D;
        uint16_t* orow = od + (blk.q0 + r) * s.H * D + blk.head * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) orow[d] = f2bf(arow[d] * inv);
      }
    }
    at::native::cpublas::brgemm_release(true);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("rope", &rope, "RoPE of (T, n, H, D) rows into dst, float32 (T, D/2) cos/sin tables");
  m.def("varlen_attention", &varlen_attention, "packed varlen attention, global or banded (bf16, AMX)");
  m.def("packed_buffer_numel", &packed_buffer_numel, "scratch size (elements) of varlen_attention's key/value buffers");
  m.def("amx_attention_supported", &amx_attention_supported, "whether ATen's brgemm can pack bf16 here");
}
