// Multi-vector search loop of indexes.MultiVectorIndex, in one pass per query (see indexes/maxsim_kernels.py).
//
// Per query: (1) candidate generation by centroid interaction over the (centroid, document)
// inverted lists, one stamp per document instead of a (tokens x candidates) matrix; with prune_to,
// PLAID's centroid interaction (every token as its centroid) keeps the best of those; (2) exact
// MaxSim of the best candidates on their FAISS scalar-quantiser codes, decompression fused
// with scoring: a token's dot product with query token j is
//     S[c, j] + bias[j] + sum_d code[d] * W[d, j]      (W = q * vdiff / levels, bias = q . (vmin + step/2))
// so the codes are widened to float once per token (L1) and multiplied against all query
// tokens at once, two document tokens per register block. Plain C ABI, loaded with ctypes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MV_AVX2 1
#endif

namespace {

struct Index {
    const uint8_t* codes;
    int64_t code_size;     // bytes per token: coarse (centroid) bytes, then the residual
    int64_t coarse_size;
    int64_t nbits;         // 4 or 8
    int64_t dim;
    const int64_t* doc_offsets;
    int64_t ndocs;
    const int64_t* list_offsets;
    const int32_t* list_docs;
    int64_t nlist;
    const uint8_t* allowed;  // 1: live and inside the subset
};

struct Codec {
    const float* centroids;  // (nlist, dim)
    const float* vmin;       // (dim) scalar quantiser ranges
    const float* vdiff;      // (dim)
};

// One query's tables, built by prepare() in a thread's scratch: nothing of size nlist crosses into Python.
struct Query {
    int64_t nq;                 // real query tokens
    int64_t nqp;                // padded to a multiple of 8: the row width of st and w
    std::vector<float> st;      // (nlist, nqp) centroid scores, transposed
    std::vector<float> w;       // (dim, nqp) q * vdiff / levels
    std::vector<float> qt;      // (dim, nqp) the query, transposed
    std::vector<float> bias;    // (nqp) q . (vmin + step / 2)
    std::vector<int64_t> probes;  // (nq, nprobe), best first
    std::vector<float> gains;     // (nq, nprobe), probe score minus the token's lowest probed score
};

inline int64_t centroid_of(const uint8_t* code, int64_t width) {
    int64_t c = 0;
    for (int64_t b = 0; b < width; ++b) c |= int64_t(code[b]) << (8 * b);
    return c;
}

inline void widen(const Index& ix, const uint8_t* code, float* x) {
    const uint8_t* body = code + ix.coarse_size;
#ifdef MV_AVX2
    // the scalar loops below cost about as much as the 32-query-token dot products they feed
    if (ix.nbits == 4 && ix.dim % 32 == 0) {
        const __m128i low = _mm_set1_epi8(15);
        for (int64_t p = 0; p < ix.dim / 2; p += 16, x += 32) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(body + p));
            const __m128i lo = _mm_and_si128(b, low), hi = _mm_and_si128(_mm_srli_epi16(b, 4), low);
            const __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);  // dims in order
            _mm256_storeu_ps(x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(first)));
            _mm256_storeu_ps(x + 8, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(first, 8))));
            _mm256_storeu_ps(x + 16, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(second)));
            _mm256_storeu_ps(x + 24, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(second, 8))));
        }
        return;
    }
    if (ix.nbits == 8 && ix.dim % 8 == 0) {
        for (int64_t d = 0; d < ix.dim; d += 8) {
            const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(body + d));
            _mm256_storeu_ps(x + d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)));
        }
        return;
    }
#endif
    if (ix.nbits == 4) {
        for (int64_t p = 0; p < ix.dim / 2; ++p) {
            x[2 * p] = float(body[p] & 15);
            x[2 * p + 1] = float(body[p] >> 4);
        }
    } else {
        for (int64_t d = 0; d < ix.dim; ++d) x[d] = float(body[d]);
    }
}

// out[t][j] = sum_d x_t[d] * w[d][j] for the tokens t of a block of 2 (x1 may alias x0).
inline void dot_block(const float* x0, const float* x1, const float* w, int64_t dim, int64_t nqp, float* out0, float* out1) {
    for (int64_t j0 = 0; j0 < nqp; j0 += 32) {
        const int64_t width = std::min<int64_t>(32, nqp - j0);
#ifdef MV_AVX2
        if (width == 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            const float* wp = w + j0;
            for (int64_t d = 0; d < dim; ++d, wp += nqp) {
                const __m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8);
                const __m256 w2 = _mm256_loadu_ps(wp + 16), w3 = _mm256_loadu_ps(wp + 24);
                const __m256 xa = _mm256_broadcast_ss(x0 + d), xb = _mm256_broadcast_ss(x1 + d);
                a0 = _mm256_fmadd_ps(xa, w0, a0); a1 = _mm256_fmadd_ps(xa, w1, a1);
                a2 = _mm256_fmadd_ps(xa, w2, a2); a3 = _mm256_fmadd_ps(xa, w3, a3);
                b0 = _mm256_fmadd_ps(xb, w0, b0); b1 = _mm256_fmadd_ps(xb, w1, b1);
                b2 = _mm256_fmadd_ps(xb, w2, b2); b3 = _mm256_fmadd_ps(xb, w3, b3);
            }
            _mm256_storeu_ps(out0 + j0, a0); _mm256_storeu_ps(out0 + j0 + 8, a1);
            _mm256_storeu_ps(out0 + j0 + 16, a2); _mm256_storeu_ps(out0 + j0 + 24, a3);
            _mm256_storeu_ps(out1 + j0, b0); _mm256_storeu_ps(out1 + j0 + 8, b1);
            _mm256_storeu_ps(out1 + j0 + 16, b2); _mm256_storeu_ps(out1 + j0 + 24, b3);
            continue;
        }
#endif
        float acc0[32] = {0}, acc1[32] = {0};
        for (int64_t d = 0; d < dim; ++d) {
            const float* wr = w + d * nqp + j0;
            for (int64_t j = 0; j < width; ++j) {
                acc0[j] += x0[d] * wr[j];
                acc1[j] += x1[d] * wr[j];
            }
        }
        std::memcpy(out0 + j0, acc0, width * sizeof(float));
        std::memcpy(out1 + j0, acc1, width * sizeof(float));
    }
}

// Centroid scores (two centroids per register block, as document tokens), the nprobe best
// centroids of each query token, and the scoring weights of one query ``(nq, dim)``.
void prepare(const Index& ix, const Codec& codec, const float* query, int64_t nq, int64_t nqp, int64_t nprobe, Query& q) {
    const int64_t dim = ix.dim, levels = (int64_t(1) << ix.nbits) - 1;
    q.nq = nq;
    q.nqp = nqp;
    q.w.assign(dim * nqp, 0.f);
    q.qt.assign(dim * nqp, 0.f);
    q.bias.assign(nqp, 0.f);
    for (int64_t j = 0; j < nq; ++j) {
        double bias = 0.0;
        for (int64_t d = 0; d < dim; ++d) {
            const float x = query[j * dim + d], step = codec.vdiff[d] / float(levels);
            q.qt[d * nqp + j] = x;
            q.w[d * nqp + j] = x * step;
            bias += double(x) * double(codec.vmin[d] + step / 2);
        }
        q.bias[j] = float(bias);
    }
    q.st.resize(ix.nlist * nqp);
    for (int64_t c = 0; c < ix.nlist; c += 2) {
        const bool pair = c + 1 < ix.nlist;
        std::vector<float> spare(pair ? 0 : nqp);
        dot_block(codec.centroids + c * dim, codec.centroids + (pair ? c + 1 : c) * dim, q.qt.data(), dim, nqp,
                  q.st.data() + c * nqp, pair ? q.st.data() + (c + 1) * nqp : spare.data());
    }
    q.probes.resize(nq * nprobe);
    q.gains.resize(nq * nprobe);
    std::vector<std::pair<float, int64_t>> top(nprobe);
    for (int64_t j = 0; j < nq; ++j) {  // a sorted run of the nprobe best: most centroids fail the first compare
        int64_t size = 0;
        for (int64_t c = 0; c < ix.nlist; ++c) {
            const float v = q.st[c * nqp + j];
            if (size == nprobe && !(v > top[size - 1].first)) continue;
            int64_t at = size < nprobe ? size++ : size - 1;
            while (at > 0 && v > top[at - 1].first) { top[at] = top[at - 1]; --at; }
            top[at] = {v, c};
        }
        for (int64_t p = 0; p < nprobe; ++p) {
            q.probes[j * nprobe + p] = top[p].second;
            q.gains[j * nprobe + p] = top[p].first - top[nprobe - 1].first;
        }
    }
}

// Exact MaxSim of one document on its codes; scratch: 2 * dim + 2 * nqp + nqp floats.
float exact_one(const Index& ix, const Query& q, int64_t doc, float* scratch) {
    float* x0 = scratch;
    float* x1 = x0 + ix.dim;
    float* s0 = x1 + ix.dim;
    float* s1 = s0 + q.nqp;
    float* best = s1 + q.nqp;
    std::fill(best, best + q.nqp, -std::numeric_limits<float>::infinity());
    const int64_t start = ix.doc_offsets[doc], stop = ix.doc_offsets[doc + 1];
    for (int64_t r = start; r < stop; r += 2) {
        const uint8_t* c0 = ix.codes + r * ix.code_size;
        const bool pair = r + 1 < stop;
        const uint8_t* c1 = pair ? c0 + ix.code_size : c0;
        widen(ix, c0, x0);
        if (pair) widen(ix, c1, x1);
        dot_block(x0, pair ? x1 : x0, q.w.data(), ix.dim, q.nqp, s0, s1);
        const float* g0 = q.st.data() + centroid_of(c0, ix.coarse_size) * q.nqp;
        const float* g1 = q.st.data() + centroid_of(c1, ix.coarse_size) * q.nqp;
        for (int64_t j = 0; j < q.nq; ++j) {
            // the same association as the torch reference: (codes . w + bias) + centroid score
            best[j] = std::max(best[j], (s0[j] + q.bias[j]) + g0[j]);
            best[j] = std::max(best[j], (s1[j] + q.bias[j]) + g1[j]);
        }
    }
    float total = 0.f;
    for (int64_t j = 0; j < q.nq; ++j) total += best[j];
    return total;
}

// PLAID's centroid interaction of one document: sum_j max over its tokens of S[c_t, j], every
// token replaced by its centroid (no residual read); summed in double, as the torch reference.
double centroid_one(const Index& ix, const Query& q, int64_t doc, float* best) {
    std::fill(best, best + q.nqp, -std::numeric_limits<float>::infinity());
    for (int64_t r = ix.doc_offsets[doc]; r < ix.doc_offsets[doc + 1]; ++r) {
        const float* g = q.st.data() + centroid_of(ix.codes + r * ix.code_size, ix.coarse_size) * q.nqp;
        for (int64_t j = 0; j < q.nqp; ++j) best[j] = std::max(best[j], g[j]);
    }
    double total = 0.0;
    for (int64_t j = 0; j < q.nq; ++j) total += double(best[j]);
    return total;
}

// The `rerank` best of `docs` by centroid interaction, in increasing document order (ties: lower position).
std::vector<int64_t> prune(const Index& ix, const Query& q, std::vector<int64_t> docs, int64_t rerank) {
    if (int64_t(docs.size()) <= rerank) return docs;
    std::vector<double> score(docs.size());
    std::vector<float> best(q.nqp);
    for (size_t m = 0; m < docs.size(); ++m) score[m] = centroid_one(ix, q, docs[m], best.data());
    std::vector<int64_t> order(docs.size());
    for (size_t m = 0; m < order.size(); ++m) order[m] = int64_t(m);
    auto better = [&](int64_t a, int64_t b) { return score[a] > score[b] || (score[a] == score[b] && docs[a] < docs[b]); };
    std::nth_element(order.begin(), order.begin() + rerank, order.end(), better);
    std::vector<int64_t> kept(rerank);
    for (int64_t m = 0; m < rerank; ++m) kept[m] = docs[order[m]];
    std::sort(kept.begin(), kept.end());
    return kept;
}

// The `rerank` best allowed documents by centroid interaction, in increasing document order.
std::vector<int64_t> candidates(const Index& ix, const Query& q, int64_t nprobe, int64_t rerank) {
    std::vector<float> approx(ix.ndocs, 0.f);
    std::vector<int32_t> stamp(ix.ndocs, -1);
    std::vector<int64_t> touched;
    for (int64_t i = 0; i < q.nq; ++i) {
        for (int64_t p = 0; p < nprobe; ++p) {  // best probe first: a document's first hit is its max
            const int64_t c = q.probes[i * nprobe + p];
            const float gain = q.gains[i * nprobe + p];
            for (int64_t e = ix.list_offsets[c]; e < ix.list_offsets[c + 1]; ++e) {
                const int32_t doc = ix.list_docs[e];
                if (stamp[doc] == int32_t(i)) continue;
                if (stamp[doc] < 0 && ix.allowed[doc]) touched.push_back(doc);
                stamp[doc] = int32_t(i);
                approx[doc] += gain;
            }
        }
    }
    if (int64_t(touched.size()) > rerank) {
        auto better = [&](int64_t a, int64_t b) { return approx[a] > approx[b] || (approx[a] == approx[b] && a < b); };
        std::nth_element(touched.begin(), touched.begin() + rerank, touched.end(), better);
        touched.resize(rerank);
    }
    std::sort(touched.begin(), touched.end());
    return touched;
}

}  // namespace

extern "C" {

// For each of `nqueries` queries (padded rows of `queries`, `nq[k]` real tokens each): score
// `fixed` documents (n_fixed >= 0) or the `rerank` best candidates (with prune_to > rerank: the
// `prune_to` best by the approximate score (the index's ndocs), then the `rerank` best of those by centroid
// interaction), writing up to `width` documents and their exact scores per query, and their count.
int mv_search(const uint8_t* codes, int64_t code_size, int64_t coarse_size, int64_t nbits, int64_t dim,
              const int64_t* doc_offsets, int64_t ndocs, const int64_t* list_offsets, const int32_t* list_docs,
              int64_t nlist, const uint8_t* allowed, const float* centroids, const float* vmin, const float* vdiff,
              int64_t nqueries, const float* queries, const int64_t* nq, int64_t nqp, int64_t nprobe, int64_t rerank,
              int64_t prune_to, const int64_t* fixed, int64_t n_fixed, int64_t width,
              int64_t* out_docs, float* out_scores, int64_t* out_counts, int64_t nthreads) {
    if ((nbits != 4 && nbits != 8) || nqp % 8 != 0 || nprobe < 1 || nprobe > nlist) return 1;
    const Index ix{codes, code_size, coarse_size, nbits, dim, doc_offsets, ndocs, list_offsets, list_docs, nlist, allowed};
    const Codec codec{centroids, vmin, vdiff};
    // One query's documents scored on `threads` threads (a thread per query when the batch has enough).
    auto score = [&](const Query& q, const std::vector<int64_t>& docs, int64_t k, int64_t threads) {
        const int64_t n = std::min<int64_t>(int64_t(docs.size()), width);
        auto part = [&](int64_t first, int64_t step) {
            std::vector<float> scratch(2 * dim + 3 * nqp);
            for (int64_t m = first; m < n; m += step) {
                out_docs[k * width + m] = docs[m];
                out_scores[k * width + m] = exact_one(ix, q, docs[m], scratch.data());
            }
        };
        std::vector<std::thread> pool;
        for (int64_t t = 1; t < threads; ++t) pool.emplace_back(part, t, threads);
        part(0, threads);
        for (auto& th : pool) th.join();
        out_counts[k] = n;
    };
    auto run = [&](int64_t first, int64_t step, int64_t inner) {
        Query q;
        for (int64_t k = first; k < nqueries; k += step) {
            prepare(ix, codec, queries + k * nqp * dim, nq[k], nqp, nprobe, q);
            if (n_fixed >= 0) score(q, std::vector<int64_t>(fixed, fixed + n_fixed), k, inner);
            else if (prune_to > rerank) score(q, prune(ix, q, candidates(ix, q, nprobe, prune_to), rerank), k, inner);
            else score(q, candidates(ix, q, nprobe, rerank), k, inner);
        }
    };
    nthreads = std::max<int64_t>(1, nthreads);
    if (nqueries < nthreads) {  // latency: split each query's exact scoring instead
        run(0, 1, nthreads);
    } else {
        std::vector<std::thread> pool;
        for (int64_t t = 1; t < nthreads; ++t) pool.emplace_back(run, t, nthreads, 1);
        run(0, nthreads, 1);
        for (auto& th : pool) th.join();
    }
    return 0;
}

}  // extern "C"
