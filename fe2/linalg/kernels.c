
#include <math.h>
#include <stdint.h>
#include <string.h>

/* J2 plasticity, radial return (see fe2/materials/j2.py for the equations), one point at a
   time: 3D Mandel (6) internally; the strain, stress and tangent in the components of the
   physics (dim 2: plane strain 11, 22, 12 = Mandel 0, 1, 5; dim 3: all 6). */
static inline __attribute__((always_inline)) void
j2_body(long m, int dim, const double* restrict strain, const double* restrict ep_n,
        const double* restrict p_n, const double* restrict beta_n, double lmbda, double mu,
        double sigma_y, double H, double H_kin, double* restrict stress,
        double* restrict tangent, double* restrict ep, double* restrict p,
        double* restrict beta, signed char* restrict ok)
{
    const int plane[3] = {0, 1, 5};
    const int nc = dim == 2 ? 3 : 6;
    const double s32 = sqrt(1.5), denominator = 3.0 * mu + H + H_kin;
    double elastic[36]; /* the tangent of an elastic step: C (the formula below with alpha = theta = 0) */
    for (int i = 0; i < nc; i++) {
        const int I = dim == 2 ? plane[i] : i;
        for (int j = 0; j < nc; j++) {
            const int J = dim == 2 ? plane[j] : j;
            elastic[i * nc + j] = (I == J ? 2.0 * mu : 0.0) + (I < 3 && J < 3 ? lmbda : 0.0);
        }
    }
    for (long a = 0; a < m; a++) {
        double e[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        for (int c = 0; c < nc; c++) e[dim == 2 ? plane[c] : c] = strain[a * nc + c];
        for (int c = 0; c < 6; c++) e[c] -= ep_n[a * 6 + c];
        const double tr = e[0] + e[1] + e[2];
        double sig[6], eta[6];
        for (int c = 0; c < 6; c++) sig[c] = 2.0 * mu * e[c] + (c < 3 ? lmbda * tr : 0.0);
        const double mean = (sig[0] + sig[1] + sig[2]) / 3.0;
        double norm2 = 0.0;
        for (int c = 0; c < 6; c++) {
            eta[c] = sig[c] - (c < 3 ? mean : 0.0) - beta_n[a * 6 + c];
            norm2 += eta[c] * eta[c];
        }
        const double norm = sqrt(norm2);
        const double f = s32 * norm - (sigma_y + H * p_n[a]);
        const int plastic = f > 0.0;
        const double dp = plastic ? f / denominator : 0.0;
        const double g = plastic ? dp / norm : 0.0; /* dp N = g eta */
        for (int c = 0; c < 6; c++) {
            sig[c] -= 2.0 * mu * s32 * g * eta[c];
            ep[a * 6 + c] = ep_n[a * 6 + c] + s32 * g * eta[c];
            beta[a * 6 + c] = beta_n[a * 6 + c] + (2.0 / 3.0) * H_kin * s32 * g * eta[c];
        }
        p[a] = p_n[a] + dp;
        const double alpha = plastic ? 6.0 * mu * mu / denominator : 0.0;
        const double theta = plastic ? 4.0 * mu * mu * s32 * dp / norm : 0.0;
        int finite = 1;
        for (int i = 0; i < nc; i++) {
            const int I = dim == 2 ? plane[i] : i;
            stress[a * nc + i] = sig[I];
            finite &= isfinite(sig[I]);
        }
        ok[a] = (signed char)finite;
        if (!plastic) {
            for (int k = 0; k < nc * nc; k++) tangent[a * nc * nc + k] = elastic[k];
            continue;
        }
        for (int i = 0; i < nc; i++) {
            const int I = dim == 2 ? plane[i] : i;
            const double NI = plastic ? eta[I] / norm : 0.0;
            for (int j = 0; j < nc; j++) {
                const int J = dim == 2 ? plane[j] : j;
                const double NJ = plastic ? eta[J] / norm : 0.0;
                const double dev = (I == J ? 1.0 : 0.0) - (I < 3 && J < 3 ? 1.0 / 3.0 : 0.0);
                const double C = (I == J ? 2.0 * mu : 0.0) + (I < 3 && J < 3 ? lmbda : 0.0);
                tangent[(a * nc + i) * nc + j] = C - alpha * NI * NJ - theta * (dev - NI * NJ);
            }
        }
    }
}

void j2_update(long m, int dim, const double* strain, const double* ep_n, const double* p_n,
               const double* beta_n, double lmbda, double mu, double sigma_y, double H, double H_kin,
               double* stress, double* tangent, double* ep, double* p, double* beta, signed char* ok)
{   /* compiled for each dimension: constant component maps */
    if (dim == 2) j2_body(m, 2, strain, ep_n, p_n, beta_n, lmbda, mu, sigma_y, H, H_kin, stress, tangent, ep, p, beta, ok);
    else j2_body(m, 3, strain, ep_n, p_n, beta_n, lmbda, mu, sigma_y, H, H_kin, stress, tangent, ep, p, beta, ok);
}


/* Elimination tree and pattern of L (column-wise, rows sorted, diagonal first) from the
   strictly upper part of the permuted matrix in CSC (Up, Ui): rows i < j of column j.
   Two passes: with Li == NULL only the column counts (count) are computed; then with Lp
   filled, the row indices. work: 2n ints. */
void chol_symbolic(int n, const int* Up, const int* Ui, int* parent, int* count, int* Lp,
                   int* Li, int* work)
{
    int* ancestor = work;
    int* flag = work + n;
    for (int k = 0; k < n; k++) {
        parent[k] = -1; ancestor[k] = -1;
        for (int p = Up[k]; p < Up[k + 1]; p++) {
            int i = Ui[p];
            while (i != -1 && i < k) {
                int next = ancestor[i];
                ancestor[i] = k;
                if (next == -1) { parent[i] = k; break; }
                i = next;
            }
        }
    }
    int* next = ancestor; /* reused: next free slot of each column */
    for (int j = 0; j < n; j++) { flag[j] = -1; if (Li) { Li[Lp[j]] = j; next[j] = Lp[j] + 1; } else count[j] = 1; }
    for (int k = 0; k < n; k++) {
        flag[k] = k;
        for (int p = Up[k]; p < Up[k + 1]; p++) {
            for (int i = Ui[p]; i != -1 && flag[i] != k; i = parent[i]) {
                flag[i] = k;
                if (Li) Li[next[i]++] = k; else count[i]++;
            }
        }
    }
}

/* Left-looking numeric factorisation of P matrices; values interleaved: entry q of matrix b
   at [q * P + b]. (Ap, Ai): the lower part of the permuted matrix in CSC, rows sorted.
   (Rp, Rk, Rpos): for every column j, the columns k < j with L[j,k] != 0 (ascending) and the
   position of L[j,k] in column k. Rrun[t] (1..8): the columns Rk[t], Rk[t] + 1, ... of this
   many entries t, t + 1, ... have the same rows from row j on (a supernode): their updates of
   column j are applied in one pass, each x[i] loaded and stored once for all of them, in the
   same order as one by one (the same factors bit for bit). x: n * P doubles of zeros (left
   zero). */
/* x[rows[s]] -= sum_r L[pos_r + s] L[pos_r] over the run of columns r (from row j on), in order */
static inline __attribute__((always_inline)) void
chol_update_run(int run, int P, int length, const int* restrict rows, const double* restrict Lx,
                const int* restrict pos, double* restrict x)
{
    const double* l[8];
    for (int r = 0; r < run; r++) l[r] = Lx + (long)pos[r] * P;
    for (int s = 0; s < length; s++) {
        double* restrict xi = x + (long)rows[s] * P;
        for (int b = 0; b < P; b++) {
            double v = xi[b];
            for (int r = 0; r < run; r++) v -= l[r][(long)s * P + b] * l[r][b];
            xi[b] = v;
        }
    }
}

void chol_numeric(int n, int P, const int* restrict Ap, const int* restrict Ai,
                  const double* restrict Ax, const int* restrict Lp, const int* restrict Li,
                  const int* restrict Rp, const int* restrict Rk, const int* restrict Rpos,
                  const int* restrict Rrun, double* restrict Lx, double* restrict x, int* restrict failed)
{
    for (int j = 0; j < n; j++) {
        for (int q = Ap[j]; q < Ap[j + 1]; q++) {
            double* restrict xi = x + (long)Ai[q] * P;
            const double* restrict a = Ax + (long)q * P;
            for (int b = 0; b < P; b++) xi[b] = a[b];
        }
        const double* restrict diagonal = Ax + (long)Ap[j] * P; /* A[j, j]: first row of column j */
        for (int t = Rp[j]; t < Rp[j + 1]; t += Rrun[t]) {
            const int length = Lp[Rk[t] + 1] - Rpos[t];
            const int* rows = Li + Rpos[t];
            switch (Rrun[t]) {
#define RUN(r) case r: chol_update_run(r, P, length, rows, Lx, Rpos + t, x); break;
            RUN(1) RUN(2) RUN(3) RUN(4) RUN(5) RUN(6) RUN(7) RUN(8)
#undef RUN
            }
        }
        double* restrict xd = x + (long)j * P;
        double* restrict ld = Lx + (long)Lp[j] * P;
        for (int b = 0; b < P; b++) {
            double d = xd[b];
            if (!(d > 1e-14 * fabs(diagonal[b]))) { failed[b] = 1; d = 1.0; }
            ld[b] = sqrt(d);
            xd[b] = 0.0;
        }
        for (int q = Lp[j] + 1; q < Lp[j + 1]; q++) {
            double* restrict xi = x + (long)Li[q] * P;
            double* restrict lq = Lx + (long)q * P;
            for (int b = 0; b < P; b++) { lq[b] = xi[b] / ld[b]; xi[b] = 0.0; }
        }
    }
}

/* The forward substitution of one block of r columns j0 .. j0 + r - 1 that share their rows
   below the block (a chain of the elimination tree, as in chol_numeric's runs): the block's
   triangle column by column, then each row below it loaded and stored once for all r columns.
   Every entry receives the same updates in the same order as column by column. */
static inline __attribute__((always_inline)) void
chol_forward_block(int j0, int r, int P, int R, const int* restrict Lp, const int* restrict Li,
                   const double* restrict Lx, double* restrict y)
{
    const long RP = (long)R * P;
    for (int c = 0; c < r; c++) {
        const int j = j0 + c;
        double* restrict yj = y + j * RP;
        const double* restrict d = Lx + (long)Lp[j] * P;
        for (int t = 0; t < R; t++) for (int b = 0; b < P; b++) yj[t * P + b] /= d[b];
        for (int q = Lp[j] + 1; q < Lp[j] + r - c; q++) { /* rows j + 1 .. j0 + r - 1 */
            double* restrict yi = y + Li[q] * RP;
            const double* restrict l = Lx + (long)q * P;
            for (int t = 0; t < R; t++) for (int b = 0; b < P; b++) yi[t * P + b] -= l[b] * yj[t * P + b];
        }
    }
    const int m = Lp[j0 + 1] - Lp[j0] - r; /* rows below the block */
    const double* l[8];
    const double* yc[8];
    for (int c = 0; c < r; c++) { l[c] = Lx + (long)(Lp[j0 + c] + r - c) * P; yc[c] = y + (j0 + c) * RP; }
    for (int s = 0; s < m; s++) {
        double* restrict yi = y + Li[Lp[j0] + r + s] * RP;
        for (int t = 0; t < R; t++) {
            for (int b = 0; b < P; b++) {
                double v = yi[t * P + b];
                for (int c = 0; c < r; c++) v -= l[c][(long)s * P + b] * yc[c][t * P + b];
                yi[t * P + b] = v;
            }
        }
    }
}

/* Solve L L^T y = rhs in place for P matrices and R right-hand sides each: y[(i * R + r) * P + b].
   blocks: the first column of each of nblocks blocks (and n), chains of at most 8 columns. */
void chol_solve(int n, int P, int R, const int* restrict Lp, const int* restrict Li,
                const double* restrict Lx, const int* restrict blocks, int nblocks, double* restrict y)
{
    const long RP = (long)R * P;
    for (int k = 0; k < nblocks; k++) {
        const int j0 = blocks[k], r = blocks[k + 1] - blocks[k];
        switch (r) {
#define BLOCK(w) case w: chol_forward_block(j0, w, P, R, Lp, Li, Lx, y); break;
        BLOCK(1) BLOCK(2) BLOCK(3) BLOCK(4) BLOCK(5) BLOCK(6) BLOCK(7) BLOCK(8)
#undef BLOCK
        }
    }
    /* Backward: y_j = (y_j - sum_q L[q, j] y[Li[q]]) / L[j, j], the terms in the order of q,
       accumulated in registers 8 lanes at a time. */
    for (int j = n - 1; j >= 0; j--) {
        double* restrict yj = y + j * RP;
        const double* restrict d = Lx + (long)Lp[j] * P;
        for (int r = 0; r < R; r++) {
            int b0 = 0;
            for (; b0 + 8 <= P; b0 += 8) {
                double v[8];
                for (int u = 0; u < 8; u++) v[u] = yj[r * P + b0 + u];
                for (int q = Lp[j] + 1; q < Lp[j + 1]; q++) {
                    const double* restrict yi = y + Li[q] * RP + r * P + b0;
                    const double* restrict l = Lx + (long)q * P + b0;
                    for (int u = 0; u < 8; u++) v[u] -= l[u] * yi[u];
                }
                for (int u = 0; u < 8; u++) yj[r * P + b0 + u] = v[u] / d[b0 + u];
            }
            for (int b = b0; b < P; b++) {
                double v = yj[r * P + b];
                for (int q = Lp[j] + 1; q < Lp[j + 1]; q++) v -= Lx[(long)q * P + b] * y[Li[q] * RP + r * P + b];
                yj[r * P + b] = v / d[b];
            }
        }
    }
}

/* Finite element kernels on element strain operators B (cells, nqp, n, k) and cell dofs
   (cells, k): strains of P fields, residuals of P flux fields, and the summation of the
   element matrices B^T D B of P tangent fields into matrix slots. */

/* out[p, c, q, i] = E[p, i] + sum_a B[c, q, i, a] w[p, dofs[c, a]]   (E may be NULL) */
static inline __attribute__((always_inline)) void
strain_body(int P, int cells, int nqp, int n, int k, int N, const double* restrict B,
            const int* restrict dofs, const double* restrict w, const double* restrict E,
            double* restrict out)
{
    for (int p = 0; p < P; p++) {
        const double* wp = w + (long)p * N;
        double* o = out + (long)p * cells * nqp * n;
        for (int c = 0; c < cells; c++) {
            const int* d = dofs + (long)c * k;
            for (int q = 0; q < nqp; q++) {
                const double* Bq = B + ((long)c * nqp + q) * n * k;
                double* oq = o + ((long)c * nqp + q) * n;
                for (int i = 0; i < n; i++) {
                    double s = E ? E[(long)p * n + i] : 0.0;
                    for (int a = 0; a < k; a++) s += Bq[i * k + a] * wp[d[a]];
                    oq[i] = s;
                }
            }
        }
    }
}

/* out[p, r, dofs[c, a]] += sum_{q, i} B[c, q, i, a] (scale flux[p, r, x, i]) dV[x],  x = c * nqp + q,
   flux[p, r, x, i] at flux[p sP + r sR + x sX + i sI] (a stress field: sR = 0; the columns of a
   tangent: sR = 1, sI = n); dV may be NULL (no weight). out (P, R, N) zeroed by the caller. */
static inline __attribute__((always_inline)) void
residual_body(int P, int R, int cells, int nqp, int n, int k, int N, const double* restrict B,
              const int* restrict dofs, const double* restrict flux, long sP, long sR, long sX,
              long sI, const double* restrict dV, double scale, double* restrict out)
{
    double f[nqp * n]; /* the weighted fluxes of one cell */
    for (int p = 0; p < P; p++) {
        for (int r = 0; r < R; r++) {
            double* o = out + ((long)p * R + r) * N;
            const double* fp = flux + p * sP + r * sR;
            for (int c = 0; c < cells; c++) {
                const int* d = dofs + (long)c * k;
                for (int q = 0; q < nqp; q++) {
                    const long x = (long)c * nqp + q;
                    for (int i = 0; i < n; i++) {
                        const double v = scale == 1.0 ? fp[x * sX + i * sI] : scale * fp[x * sX + i * sI];
                        f[q * n + i] = dV ? v * dV[x] : v;
                    }
                }
                for (int a = 0; a < k; a++) {
                    double s = 0.0;
                    for (int q = 0; q < nqp; q++) {
                        const double* Bq = B + ((long)c * nqp + q) * n * k;
                        for (int i = 0; i < n; i++) s += Bq[i * k + a] * f[q * n + i];
                    }
                    o[d[a]] += s;
                }
            }
        }
    }
}

/* K[slot[c, a, b], p] += sum_q sum_{i, j} B[c, q, i, a] D_p[c, q, i, j] B[c, q, j, b] for the
   entries with slot >= 0, D_p = dV * (the tangent of point points[p]: D + points[p] * stride,
   (cells, nqp, n, n)); dV may be NULL. K interleaves the P points (innermost).
   T: (k * n + n * n) * P doubles of work space. */
static inline __attribute__((always_inline)) void
assemble_body(int cells, int nqp, int n, int k, int P, const double* restrict B,
              const double* restrict D, const int64_t* restrict points, long stride,
              const double* restrict dV, const int* restrict slot, double* restrict K,
              double* restrict T)
{
    double* restrict Dq = T + (long)k * n * P; /* this point's D of the P points, (n, n, P) */
    for (int c = 0; c < cells; c++) {
        const int* s = slot + (long)c * k * k;
        for (int q = 0; q < nqp; q++) {
            const double* Bq = B + ((long)c * nqp + q) * n * k;
            const long x = (long)c * nqp + q;
            for (int p = 0; p < P; p++) {
                const double* src = D + points[p] * stride + x * n * n;
                if (dV) for (int ij = 0; ij < n * n; ij++) Dq[(long)ij * P + p] = src[ij] * dV[x];
                else for (int ij = 0; ij < n * n; ij++) Dq[(long)ij * P + p] = src[ij];
            }
            for (int a = 0; a < k; a++) {
                for (int j = 0; j < n; j++) {
                    double* restrict t = T + ((long)a * n + j) * P;
                    for (int p = 0; p < P; p++) t[p] = 0.0;
                    for (int i = 0; i < n; i++) {
                        const double bia = Bq[i * k + a];
                        if (bia == 0.0) continue;
                        const double* restrict d = Dq + ((long)i * n + j) * P;
                        for (int p = 0; p < P; p++) t[p] += bia * d[p];
                    }
                }
            }
            for (int a = 0; a < k; a++) {
                for (int b = 0; b < k; b++) {
                    const int target = s[a * k + b];
                    if (target < 0) continue;
                    double* restrict Ks = K + (long)target * P;
                    for (int j = 0; j < n; j++) {
                        const double bjb = Bq[j * k + b];
                        if (bjb == 0.0) continue;
                        const double* restrict t = T + ((long)a * n + j) * P;
                        for (int p = 0; p < P; p++) Ks[p] += t[p] * bjb;
                    }
                }
            }
        }
    }
}

/* Volume averages of the n sensitivity fields of P points: for point p and unit load r,
   e = e_r + strain(dw[p, r]), s = C_p e at every quadrature point x (C_p: tangent (P, cells,
   nqp, n, n)), and with the weights w_x = dV_x / V:
     avg_stress[p, i, r] = sum_x w s_i,   avg_strain[p, i, r] = sum_x w e_i,
     micro[p, r] = sum_x w s.e,           scale[p, r] = sum_x w |s| |e|.   dw: (P, n, N). */
static inline __attribute__((always_inline)) void
sensitivity_body(int P, int cells, int nqp, int n, int k, int N, const double* restrict B,
                 const int* restrict dofs, const double* restrict dw, const double* restrict tangent,
                 const double* restrict weights, double* restrict avg_stress,
                 double* restrict avg_strain, double* restrict micro, double* restrict scale)
{
    double e[n], s[n], as[n], ae[n];
    for (int p = 0; p < P; p++) {
        const double* Cp = tangent + (long)p * cells * nqp * n * n;
        for (int r = 0; r < n; r++) {
            const double* w = dw + ((long)p * n + r) * N;
            double m = 0.0, sc = 0.0;
            for (int i = 0; i < n; i++) { as[i] = 0.0; ae[i] = 0.0; }
            for (int c = 0; c < cells; c++) {
                const int* d = dofs + (long)c * k;
                for (int q = 0; q < nqp; q++) {
                    const long x = (long)c * nqp + q;
                    const double* Bq = B + x * n * k;
                    const double* C = Cp + x * n * n;
                    double ee = 0.0, ss = 0.0, se = 0.0;
                    for (int i = 0; i < n; i++) {
                        double v = 0.0;
                        for (int a = 0; a < k; a++) v += Bq[i * k + a] * w[d[a]];
                        e[i] = (i == r ? 1.0 : 0.0) + v;
                    }
                    for (int i = 0; i < n; i++) {
                        double v = 0.0;
                        for (int j = 0; j < n; j++) v += C[i * n + j] * e[j];
                        s[i] = v;
                        ee += e[i] * e[i]; ss += v * v; se += v * e[i];
                    }
                    const double wx = weights[x];
                    for (int i = 0; i < n; i++) { as[i] += wx * s[i]; ae[i] += wx * e[i]; }
                    m += wx * se;
                    sc += wx * sqrt(ss) * sqrt(ee);
                }
            }
            for (int i = 0; i < n; i++) {
                avg_stress[((long)p * n + i) * n + r] = as[i];
                avg_strain[((long)p * n + i) * n + r] = ae[i];
            }
            micro[(long)p * n + r] = m;
            scale[(long)p * n + r] = sc;
        }
    }
}

/* Reductions over the X quadrature points of P states (values (P, X, n), weights w (X,)). */

/* Volume averages: <s>, <e> (P, n), <s.h> and <|s||h|> (P,), h = e - ref. */
void qp_averages(int P, long X, int n, const double* restrict stress, const double* restrict strain,
                 const double* restrict ref, const double* restrict w, double* restrict avg_stress,
                 double* restrict avg_strain, double* restrict energy, double* restrict scale)
{
    double as[n], ae[n];
    for (int p = 0; p < P; p++) {
        double en = 0.0, sc = 0.0;
        for (int i = 0; i < n; i++) { as[i] = 0.0; ae[i] = 0.0; }
        for (long x = 0; x < X; x++) {
            const double* s = stress + ((long)p * X + x) * n;
            const double* e = strain + ((long)p * X + x) * n;
            double ss = 0.0, hh = 0.0, sh = 0.0;
            for (int i = 0; i < n; i++) {
                const double h = e[i] - ref[i];
                ss += s[i] * s[i]; hh += h * h; sh += s[i] * h;
                as[i] += w[x] * s[i]; ae[i] += w[x] * e[i];
            }
            en += w[x] * sh;
            sc += w[x] * (sqrt(ss) * sqrt(hh));
        }
        for (int i = 0; i < n; i++) { avg_stress[(long)p * n + i] = as[i]; avg_strain[(long)p * n + i] = ae[i]; }
        energy[p] = en;
        scale[p] = sc;
    }
}

/* out[p, slots[g]] = sum_{q = starts[g]}^{starts[g + 1] - 1} values[p, order[q]] in the order of q
   (values (P, S), out (P, size); slots without a group are left as they are). */
void scatter_sum(int P, long S, long groups, long size, const double* restrict values,
                 const int64_t* restrict order, const int64_t* restrict starts, const int64_t* restrict slots,
                 double* restrict out)
{
    for (int p = 0; p < P; p++) {
        const double* v = values + (long)p * S;
        double* o = out + (long)p * size;
        for (long g = 0; g < groups; g++) {
            double s = v[order[starts[g]]];
            for (long q = starts[g] + 1; q < starts[g + 1]; q++) s += v[order[q]];
            o[slots[g]] = s;
        }
    }
}

static inline __attribute__((always_inline)) void
terms_body(int P, long X, int n, int c0, int m, const double* restrict tangent,
           const double* restrict strain, const double* restrict w, double* restrict out)
{
    for (int p = 0; p < P; p++) {
        double t = 0.0;
        for (long x = 0; x < X; x++) {
            const double* C = tangent + ((long)p * X + x) * n * n;
            const double* e = strain + ((long)p * X + x) * n;
            double cc = 0.0, ee = 0.0;
            for (int i = c0; i < c0 + m; i++) {
                ee += e[i] * e[i];
                for (int j = c0; j < c0 + m; j++) cc += C[i * n + j] * C[i * n + j];
            }
            t += cc * ee * w[x];
        }
        out[p] = sqrt(t);
    }
}

/* The size of a residual's terms (fe2.convergence.residual_terms) over the components
   c0 .. c0 + m - 1: out[p] = sqrt(sum_x |C_x|^2 |e_x|^2 w_x), w = (dV / h)^2; tangent (P, X, n, n). */
void qp_terms(int P, long X, int n, int c0, int m, const double* tangent, const double* strain,
              const double* w, double* out)
{   /* compiled for all components of 2D/3D small strain and 2D/3D finite strain */
    if (n == 3 && c0 == 0 && m == 3) terms_body(P, X, 3, 0, 3, tangent, strain, w, out);
    else if (n == 6 && c0 == 0 && m == 6) terms_body(P, X, 6, 0, 6, tangent, strain, w, out);
    else if (n == 4 && c0 == 0 && m == 4) terms_body(P, X, 4, 0, 4, tangent, strain, w, out);
    else if (n == 9 && c0 == 0 && m == 9) terms_body(P, X, 9, 0, 9, tangent, strain, w, out);
    else terms_body(P, X, n, c0, m, tangent, strain, w, out);
}

/* The public kernels: the bodies above compiled once for the common element shapes (n strain
   components, k dofs per cell, nqp points per cell: P1 triangles and tetrahedra at small and
   finite strain, P2 triangles), where the constant sizes let the compiler unroll the short
   loops, and once for any shape. */
#define FE_DISPATCH(CALL) \
    if (n == 3 && k == 6 && nqp == 1) CALL(3, 6, 1); \
    else if (n == 6 && k == 12 && nqp == 1) CALL(6, 12, 1); \
    else if (n == 4 && k == 6 && nqp == 1) CALL(4, 6, 1); \
    else if (n == 9 && k == 12 && nqp == 1) CALL(9, 12, 1); \
    else if (n == 3 && k == 12 && nqp == 3) CALL(3, 12, 3); \
    else CALL(n, k, nqp);

void fe_strain(int P, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
               const double* w, const double* E, double* out)
{
#define CALL(n_, k_, q_) strain_body(P, cells, q_, n_, k_, N, B, dofs, w, E, out)
    FE_DISPATCH(CALL)
#undef CALL
}

void fe_residual(int P, int R, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
                 const double* flux, long sP, long sR, long sX, long sI, const double* dV, double scale,
                 double* out)
{
#define CALL(n_, k_, q_) residual_body(P, R, cells, q_, n_, k_, N, B, dofs, flux, sP, sR, sX, sI, dV, scale, out)
    FE_DISPATCH(CALL)
#undef CALL
}

void fe_assemble(int cells, int nqp, int n, int k, int P, const double* B, const double* D,
                 const int64_t* points, long stride, const double* dV, const int* slot, double* K, double* T)
{
#define CALL(n_, k_, q_) assemble_body(cells, q_, n_, k_, P, B, D, points, stride, dV, slot, K, T)
    FE_DISPATCH(CALL)
#undef CALL
}

void fe_sensitivity(int P, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
                    const double* dw, const double* tangent, const double* weights, double* avg_stress,
                    double* avg_strain, double* micro, double* scale)
{
#define CALL(n_, k_, q_) sensitivity_body(P, cells, q_, n_, k_, N, B, dofs, dw, tangent, weights, \
                                          avg_stress, avg_strain, micro, scale)
    FE_DISPATCH(CALL)
#undef CALL
}
