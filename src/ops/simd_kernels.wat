;; Kernels that tfjs-backend-wasm runs slowly (GELU, LayerNorm, batched matMuls), written for wasm SIMD (128-bit) and run on the
;; backend's own heap: the module imports tfjs's WebAssembly.Memory and owns no memory, data or
;; globals, so it can never write anywhere but the output pointers it is given.
;; Assembled by scripts/build_simd.js into src/ops/simd_kernels_wasm.ts (a shared-memory variant
;; for the threaded build and an unshared one for the stock build); loaded by src/ops/simd.ts.
;; Pointers are byte offsets into the heap; counts are values, not bytes.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; out[i] = GELU(x[i]) = x / 2 * (1 + erf(x / sqrt 2)) for i < n.
  ;; erf(z) = z P(z^2) / Q(z^2) on [0, 3.92] (a rational fit from scripts/gen_erf_coeffs.py:
  ;; max abs error 4e-8 in exact arithmetic, 3.2e-7 evaluated in float32), and 1 from 3.92 on,
  ;; where erf rounds to 1 in float32. Every value takes the same path (a partial vector at the
  ;; end holds one value), so results do not depend on where a range starts.
  (func (export "gelu") (param $x i32) (param $out i32) (param $n i32)
    (local $v v128) (local $a v128) (local $z v128) (local $s v128) (local $s2 v128) (local $s4 v128)
    (local $p v128) (local $q v128) (local $e v128) (local $r v128) (local $full i32)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $p4 v128) (local $p5 v128)
    (local $p6 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128) (local $q4 v128)
    (local $sqrt1_2 v128) (local $zmax v128) (local $one v128) (local $half v128) (local $sign v128)
    ;; constants in locals: the loop then does not rebuild them every iteration
    (local.set $p0 (v128.const f32x4 1.12837875 1.12837875 1.12837875 1.12837875))
    (local.set $p1 (v128.const f32x4 2.06131905e-01 2.06131905e-01 2.06131905e-01 2.06131905e-01))
    (local.set $p2 (v128.const f32x4 5.13997003e-02 5.13997003e-02 5.13997003e-02 5.13997003e-02))
    (local.set $p3 (v128.const f32x4 3.97363910e-03 3.97363910e-03 3.97363910e-03 3.97363910e-03))
    (local.set $p4 (v128.const f32x4 1.49003507e-04 1.49003507e-04 1.49003507e-04 1.49003507e-04))
    (local.set $p5 (v128.const f32x4 -1.99433384e-06 -1.99433384e-06 -1.99433384e-06 -1.99433384e-06))
    (local.set $p6 (v128.const f32x4 1.99204937e-08 1.99204937e-08 1.99204937e-08 1.99204937e-08))
    (local.set $q1 (v128.const f32x4 5.16008377e-01 5.16008377e-01 5.16008377e-01 5.16008377e-01))
    (local.set $q2 (v128.const f32x4 1.17571928e-01 1.17571928e-01 1.17571928e-01 1.17571928e-01))
    (local.set $q3 (v128.const f32x4 1.48907602e-02 1.48907602e-02 1.48907602e-02 1.48907602e-02))
    (local.set $q4 (v128.const f32x4 1.02430058e-03 1.02430058e-03 1.02430058e-03 1.02430058e-03))
    (local.set $sqrt1_2 (v128.const f32x4 0.70710677 0.70710677 0.70710677 0.70710677))
    (local.set $zmax (v128.const f32x4 3.92 3.92 3.92 3.92))
    (local.set $one (v128.const f32x4 1 1 1 1))
    (local.set $half (v128.const f32x4 0.5 0.5 0.5 0.5))
    (local.set $sign (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $full (i32.ge_u (local.get $n) (i32.const 4)))
        (if (local.get $full)
          (then (local.set $v (v128.load (local.get $x))))
          (else (local.set $v (v128.load32_zero (local.get $x)))))
        (local.set $a (f32x4.abs (local.get $v)))
        (local.set $z (f32x4.pmin (f32x4.mul (local.get $a) (local.get $sqrt1_2)) (local.get $zmax)))
        (local.set $s (f32x4.mul (local.get $z) (local.get $z)))
        (local.set $s2 (f32x4.mul (local.get $s) (local.get $s)))
        (local.set $s4 (f32x4.mul (local.get $s2) (local.get $s2)))
        ;; P(s) and Q(s) by Estrin's scheme (shorter dependency chains than Horner's)
        (local.set $p
          (f32x4.add
            (f32x4.add
              (f32x4.add (local.get $p0) (f32x4.mul (local.get $p1) (local.get $s)))
              (f32x4.mul (local.get $s2) (f32x4.add (local.get $p2) (f32x4.mul (local.get $p3) (local.get $s)))))
            (f32x4.mul (local.get $s4)
              (f32x4.add
                (f32x4.add (local.get $p4) (f32x4.mul (local.get $p5) (local.get $s)))
                (f32x4.mul (local.get $p6) (local.get $s2))))))
        (local.set $q
          (f32x4.add
            (f32x4.add
              (f32x4.add (local.get $one) (f32x4.mul (local.get $q1) (local.get $s)))
              (f32x4.mul (local.get $s2) (f32x4.add (local.get $q2) (f32x4.mul (local.get $q3) (local.get $s)))))
            (f32x4.mul (local.get $s4) (local.get $q4))))
        ;; erf, at most 1, and exactly 1 from 3.92 on (so GELU(-x) is 0 there, not -x * 1e-7)
        (local.set $e
          (f32x4.pmin (f32x4.div (f32x4.mul (local.get $z) (local.get $p)) (local.get $q)) (local.get $one)))
        (local.set $e
          (v128.bitselect (local.get $one) (local.get $e) (f32x4.ge (local.get $z) (local.get $zmax))))
        ;; x / 2 * (1 + erf(x / sqrt 2)) with erf's sign from x: exact for negative x where erf is
        ;; in [-1, -1/2] (Sterbenz), and GELU(-0) = -0 as in PyTorch
        (local.set $r
          (f32x4.mul
            (f32x4.mul (local.get $v) (local.get $half))
            (f32x4.add (local.get $one) (v128.bitselect (local.get $v) (local.get $e) (local.get $sign)))))
        (if (local.get $full)
          (then
            (v128.store (local.get $out) (local.get $r))
            (local.set $x (i32.add (local.get $x) (i32.const 16)))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (local.set $n (i32.sub (local.get $n) (i32.const 4))))
          (else
            (v128.store32_lane 0 (local.get $out) (local.get $r))
            (local.set $x (i32.add (local.get $x) (i32.const 4)))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))))
        (br $next))))

  ;; out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta for the rows r < rows of c values
  ;; (c a multiple of 4), with the row's mean and biased variance (as nn.LayerNorm). The same
  ;; operations in the same order as the tf.js composition in src/layers/common.ts, except that
  ;; the two sums run in 8 lanes; one read of the row from memory instead of nine passes.
  (func (export "layerNorm") (param $x i32) (param $gamma i32) (param $beta i32) (param $out i32)
    (param $rows i32) (param $c i32) (param $eps f32)
    (local $bytes i32) (local $p i32) (local $count f32) (local $total f32)
    (local $s0 v128) (local $s1 v128) (local $d v128) (local $e v128) (local $mean v128) (local $inv v128)
    (local.set $bytes (i32.shl (local.get $c) (i32.const 2)))
    (local.set $count (f32.convert_i32_u (local.get $c)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        ;; mean: two vectors a step (two independent sums), then the last one if c / 4 is odd
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $s1 (local.get $s0))
        (local.set $p (i32.const 0))
        (block $sum_done
          (loop $sum
            (br_if $sum_done (i32.gt_u (i32.add (local.get $p) (i32.const 32)) (local.get $bytes)))
            (local.set $s0 (f32x4.add (local.get $s0) (v128.load (i32.add (local.get $x) (local.get $p)))))
            (local.set $s1 (f32x4.add (local.get $s1) (v128.load offset=16 (i32.add (local.get $x) (local.get $p)))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (br $sum)))
        (if (i32.lt_u (local.get $p) (local.get $bytes))
          (then (local.set $s0 (f32x4.add (local.get $s0) (v128.load (i32.add (local.get $x) (local.get $p)))))))
        (local.set $total (call $lanes_sum (f32x4.add (local.get $s0) (local.get $s1))))
        (local.set $mean (f32x4.splat (f32.div (local.get $total) (local.get $count))))
        ;; variance: the same sums over (x - mean)^2
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $s1 (local.get $s0))
        (local.set $p (i32.const 0))
        (block $sq_done
          (loop $sq
            (br_if $sq_done (i32.gt_u (i32.add (local.get $p) (i32.const 32)) (local.get $bytes)))
            (local.set $d (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $mean)))
            (local.set $e (f32x4.sub (v128.load offset=16 (i32.add (local.get $x) (local.get $p))) (local.get $mean)))
            (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $d) (local.get $d))))
            (local.set $s1 (f32x4.add (local.get $s1) (f32x4.mul (local.get $e) (local.get $e))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (br $sq)))
        (if (i32.lt_u (local.get $p) (local.get $bytes))
          (then
            (local.set $d (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $mean)))
            (local.set $s0 (f32x4.add (local.get $s0) (f32x4.mul (local.get $d) (local.get $d))))))
        (local.set $total (call $lanes_sum (f32x4.add (local.get $s0) (local.get $s1))))
        (local.set $inv
          (f32x4.splat
            (f32.div (f32.const 1)
              (f32.sqrt (f32.add (f32.div (local.get $total) (local.get $count)) (local.get $eps))))))
        ;; ((x - mean) * inv) * gamma + beta
        (local.set $p (i32.const 0))
        (block $norm_done
          (loop $norm
            (br_if $norm_done (i32.ge_u (local.get $p) (local.get $bytes)))
            (v128.store (i32.add (local.get $out) (local.get $p))
              (f32x4.add
                (f32x4.mul
                  (f32x4.mul
                    (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $mean))
                    (local.get $inv))
                  (v128.load (i32.add (local.get $gamma) (local.get $p))))
                (v128.load (i32.add (local.get $beta) (local.get $p)))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $norm)))
        (local.set $x (i32.add (local.get $x) (local.get $bytes)))
        (local.set $out (i32.add (local.get $out) (local.get $bytes)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))

  ;; (v0 + v1) + (v2 + v3) of a vector's lanes
  (func $lanes_sum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

;; c[g] = a[g] x b[g] for g < batch: a[g] is [m, k], b[g] is [k, n] with n a multiple of 4,
  ;; c[g] is [m, n] (row-major, c's items contiguous). strideA and strideB are the byte distances
  ;; between items (0 repeats one item for every g). Blocks of 4 rows x 8 columns (then 4 x 4 for
  ;; the last 4 columns when n % 8 = 4); rows past m repeat the last row and are not stored. The
  ;; k products are taken in slabs of 256 (a block's rows of a stay in L1 and the slab of b in
  ;; L2 for any k); between slabs each accumulator waits in c, so every output still sums its k
  ;; products in order, one rounding per multiply and per add.
  (func (export "matmul") (param $a i32) (param $b i32) (param $c i32) (param $batch i32)
    (param $m i32) (param $k i32) (param $n i32) (param $strideA i32) (param $strideB i32)
    (local $rowA i32) (local $rowC i32) (local $i i32) (local $jb i32) (local $p i32)
    (local $k0 i32) (local $pEnd i32) (local $rows i32) (local $wide i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $bp i32)
    (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32)
    (local $x v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $rowA (i32.shl (local.get $k) (i32.const 2)))
    (local.set $rowC (i32.shl (local.get $n) (i32.const 2)))
    (block $batches_done
      (loop $batches
        (br_if $batches_done (i32.eqz (local.get $batch)))
        (local.set $k0 (i32.const 0))
        ;; at least one slab, so that k = 0 writes zeros
        (loop $slabs
          (local.set $pEnd (i32.add (local.get $k0) (i32.const 1024)))
          (if (i32.gt_u (local.get $pEnd) (local.get $rowA)) (then (local.set $pEnd (local.get $rowA))))
          (local.set $i (i32.const 0))
          (block $rows_done
            (loop $row_blocks
              (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
              (local.set $rows (i32.sub (local.get $m) (local.get $i)))
              ;; the 4 rows of a and c of this block; past m, the previous row again
            (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $rowA))))
            (local.set $a1 (local.get $a0))
            (if (i32.gt_u (local.get $rows) (i32.const 1))
              (then (local.set $a1 (i32.add (local.get $a0) (local.get $rowA)))))
            (local.set $a2 (local.get $a1))
            (if (i32.gt_u (local.get $rows) (i32.const 2))
              (then (local.set $a2 (i32.add (local.get $a1) (local.get $rowA)))))
            (local.set $a3 (local.get $a2))
            (if (i32.gt_u (local.get $rows) (i32.const 3))
              (then (local.set $a3 (i32.add (local.get $a2) (local.get $rowA)))))
            (local.set $r0 (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $rowC))))
            (local.set $r1 (local.get $r0))
            (if (i32.gt_u (local.get $rows) (i32.const 1))
              (then (local.set $r1 (i32.add (local.get $r0) (local.get $rowC)))))
            (local.set $r2 (local.get $r1))
            (if (i32.gt_u (local.get $rows) (i32.const 2))
              (then (local.set $r2 (i32.add (local.get $r1) (local.get $rowC)))))
            (local.set $r3 (local.get $r2))
            (if (i32.gt_u (local.get $rows) (i32.const 3))
              (then (local.set $r3 (i32.add (local.get $r2) (local.get $rowC)))))
              (local.set $jb (i32.const 0))
              (block $cols_done
                (loop $col_blocks
                  (br_if $cols_done (i32.ge_u (local.get $jb) (local.get $rowC)))
                  (local.set $wide (i32.ge_u (i32.sub (local.get $rowC) (local.get $jb)) (i32.const 32)))
                  (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (local.get $c00))
                  (local.set $c10 (local.get $c00)) (local.set $c11 (local.get $c00))
                  (local.set $c20 (local.get $c00)) (local.set $c21 (local.get $c00))
                  (local.set $c30 (local.get $c00)) (local.set $c31 (local.get $c00))
                  (if (local.get $k0)
                    (then
                      ;; the sums so far, from the previous slab
                    (local.set $c00 (v128.load (i32.add (local.get $r0) (local.get $jb))))
                    (if (local.get $wide)
                      (then (local.set $c01 (v128.load offset=16 (i32.add (local.get $r0) (local.get $jb))))))
                    (local.set $c10 (v128.load (i32.add (local.get $r1) (local.get $jb))))
                    (if (local.get $wide)
                      (then (local.set $c11 (v128.load offset=16 (i32.add (local.get $r1) (local.get $jb))))))
                    (local.set $c20 (v128.load (i32.add (local.get $r2) (local.get $jb))))
                    (if (local.get $wide)
                      (then (local.set $c21 (v128.load offset=16 (i32.add (local.get $r2) (local.get $jb))))))
                    (local.set $c30 (v128.load (i32.add (local.get $r3) (local.get $jb))))
                    (if (local.get $wide)
                      (then (local.set $c31 (v128.load offset=16 (i32.add (local.get $r3) (local.get $jb))))))
))
                  (local.set $bp
                    (i32.add (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $k0) (i32.const 2)) (local.get $rowC)))
                      (local.get $jb)))
                  (local.set $p (local.get $k0))
                  (if (local.get $wide)
                    (then
                    (block $k_done
                      (loop $k_steps
                        (br_if $k_done (i32.ge_u (local.get $p) (local.get $pEnd)))
                        (local.set $b0 (v128.load (local.get $bp)))
                        (local.set $b1 (v128.load offset=16 (local.get $bp)))
                        (local.set $x (v128.load32_splat (i32.add (local.get $a0) (local.get $p))))
                        (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $b0))))
                        (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $b1))))
                        (local.set $x (v128.load32_splat (i32.add (local.get $a1) (local.get $p))))
                        (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $b0))))
                        (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $b1))))
                        (local.set $x (v128.load32_splat (i32.add (local.get $a2) (local.get $p))))
                        (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $b0))))
                        (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $b1))))
                        (local.set $x (v128.load32_splat (i32.add (local.get $a3) (local.get $p))))
                        (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $b0))))
                        (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $b1))))
                        (local.set $bp (i32.add (local.get $bp) (local.get $rowC)))
                        (local.set $p (i32.add (local.get $p) (i32.const 4)))
                        (br $k_steps))))
                    (else
                      ;; the last 4 columns
                    (block $k4_done
                      (loop $k4_steps
                        (br_if $k4_done (i32.ge_u (local.get $p) (local.get $pEnd)))
                        (local.set $b0 (v128.load (local.get $bp)))
                        (local.set $c00 (f32x4.add (local.get $c00)
                          (f32x4.mul (v128.load32_splat (i32.add (local.get $a0) (local.get $p))) (local.get $b0))))
                        (local.set $c10 (f32x4.add (local.get $c10)
                          (f32x4.mul (v128.load32_splat (i32.add (local.get $a1) (local.get $p))) (local.get $b0))))
                        (local.set $c20 (f32x4.add (local.get $c20)
                          (f32x4.mul (v128.load32_splat (i32.add (local.get $a2) (local.get $p))) (local.get $b0))))
                        (local.set $c30 (f32x4.add (local.get $c30)
                          (f32x4.mul (v128.load32_splat (i32.add (local.get $a3) (local.get $p))) (local.get $b0))))
                        (local.set $bp (i32.add (local.get $bp) (local.get $rowC)))
                        (local.set $p (i32.add (local.get $p) (i32.const 4)))
                        (br $k4_steps)))))
                ;; the rows of the block that exist (8 or 4 columns)
                (if (i32.gt_u (local.get $rows) (i32.const 0))
                  (then (call $store_row (i32.add (local.get $r0) (local.get $jb)) (local.get $c00) (local.get $c01) (local.get $wide))))
                (if (i32.gt_u (local.get $rows) (i32.const 1))
                  (then (call $store_row (i32.add (local.get $r1) (local.get $jb)) (local.get $c10) (local.get $c11) (local.get $wide))))
                (if (i32.gt_u (local.get $rows) (i32.const 2))
                  (then (call $store_row (i32.add (local.get $r2) (local.get $jb)) (local.get $c20) (local.get $c21) (local.get $wide))))
                (if (i32.gt_u (local.get $rows) (i32.const 3))
                  (then (call $store_row (i32.add (local.get $r3) (local.get $jb)) (local.get $c30) (local.get $c31) (local.get $wide))))
                  (local.set $jb (i32.add (local.get $jb) (i32.const 32)))
                  (br $col_blocks)))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))
              (br $row_blocks)))
          (local.set $k0 (local.get $pEnd))
          (br_if $slabs (i32.lt_u (local.get $k0) (local.get $rowA))))
        (local.set $a (i32.add (local.get $a) (local.get $strideA)))
        (local.set $b (i32.add (local.get $b) (local.get $strideB)))
        (local.set $c (i32.add (local.get $c) (i32.mul (local.get $m) (local.get $rowC))))
        (local.set $batch (i32.sub (local.get $batch) (i32.const 1)))
        (br $batches))))

  ;; Cross-attention scores of RoPE attention against spatial memories on a grid, with the keys'
  ;; projection and rotation factored into the queries (layers/rope_attention.ts derives it):
  ;; s[i][t n + y W + x] = gb + hb + sum over c < 64 of (g[c] + h[c]) u[t][c] at (y, x), where
  ;; g = g[i][x / 4][c][x % 4] ([rows][xBlocks][65][4], entry 64 the bias term), h = h[i][y][c]
  ;; ([rows][gridH][65]), and u holds the memories' 64 key channels in groups of four memories
  ;; and blocks of 4 positions ([groups][gridH][xBlocks][64][4][4]); memory t < tCount has its
  ;; scores in columns t n .. t n + n - 1 of s's rows (ldS floats apart), n = gridH W, W = 4 xBlocks
  ;; (a group's memories past tCount are computed, not stored). 64 multiply-adds a score instead
  ;; of 256. Two queries, 4 positions and 4 memories at a time: 8 sums in flight hide the add's
  ;; latency, and few enough live vectors that V8 keeps them in registers.
  (func (export "ropeScores") (param $g i32) (param $h i32) (param $u i32) (param $s i32) (param $rows i32)
    (param $xBlocks i32) (param $gridH i32) (param $tCount i32) (param $ldS i32)
    (local $i0 i32) (local $iEnd i32) (local $xb i32) (local $i i32) (local $y i32) (local $t i32) (local $two i32)
    (local $gI i32) (local $hI i32) (local $gStep i32) (local $hStep i32) (local $groupStep i32)
    (local $up i32) (local $sp i32) (local $n4 i32) (local $ld4 i32)
    (local.set $n4 (i32.mul (i32.mul (local.get $gridH) (local.get $xBlocks)) (i32.const 16)))
    (local.set $ld4 (i32.shl (local.get $ldS) (i32.const 2)))
    (local.set $gStep (i32.mul (local.get $xBlocks) (i32.const 1040)))
    (local.set $hStep (i32.mul (local.get $gridH) (i32.const 260)))
    (local.set $groupStep (i32.shl (local.get $n4) (i32.const 8)))
    ;; tiles of 16 queries: their g and h rows stay in L2 while the memory blocks pass once; in a
    ;; tile a memory block (4 positions of a row y, in L1) serves all 16 queries, and x runs
    ;; innermost but for the queries, so each output row is written in whole cache lines
    (local.set $i0 (i32.const 0))
    (block $tiles_done
      (loop $tile_next
        (br_if $tiles_done (i32.ge_u (local.get $i0) (local.get $rows)))
        (local.set $iEnd (i32.add (local.get $i0) (i32.const 16)))
        (if (i32.gt_u (local.get $iEnd) (local.get $rows)) (then (local.set $iEnd (local.get $rows))))
        (local.set $y (i32.const 0))
        (block $y_done
          (loop $y_next
            (br_if $y_done (i32.ge_u (local.get $y) (local.get $gridH)))
            (local.set $xb (i32.const 0))
            (block $xb_done
              (loop $xb_next
                (br_if $xb_done (i32.ge_u (local.get $xb) (local.get $xBlocks)))
                (local.set $i (local.get $i0))
                (block $i_done
                  (loop $i_next
                    (br_if $i_done (i32.ge_u (local.get $i) (local.get $iEnd)))
                    ;; queries i and i + 1 (i again when i is the last row; stored once)
                    (local.set $two (i32.lt_u (i32.add (local.get $i) (i32.const 1)) (local.get $iEnd)))
                    (local.set $gI (i32.add (local.get $g)
                      (i32.add (i32.mul (local.get $i) (local.get $gStep)) (i32.mul (local.get $xb) (i32.const 1040)))))
                    (local.set $hI (i32.add (local.get $h)
                      (i32.add (i32.mul (local.get $i) (local.get $hStep)) (i32.mul (local.get $y) (i32.const 260)))))
                    (local.set $sp (i32.add (local.get $s)
                      (i32.add (i32.mul (local.get $i) (local.get $ld4))
                        (i32.shl (i32.add (i32.mul (local.get $y) (local.get $xBlocks)) (local.get $xb)) (i32.const 4)))))
                    (local.set $up (i32.add (local.get $u)
                      (i32.shl (i32.add (i32.mul (local.get $y) (local.get $xBlocks)) (local.get $xb)) (i32.const 12))))
                    (local.set $t (i32.const 0))
                    (block $t_done
                      (loop $t_next
                        (br_if $t_done (i32.ge_u (local.get $t) (local.get $tCount)))
                        (call $ropeBlock (local.get $gI) (local.get $hI)
                          (i32.add (local.get $gI) (select (local.get $gStep) (i32.const 0) (local.get $two)))
                          (i32.add (local.get $hI) (select (local.get $hStep) (i32.const 0) (local.get $two)))
                          (local.get $up) (i32.add (local.get $sp) (i32.mul (local.get $t) (local.get $n4)))
                          (local.get $n4) (local.get $ld4) (local.get $two) (i32.sub (local.get $tCount) (local.get $t)))
                        ;; the next group's block: gridH xBlocks blocks of 4 KB further
                        (local.set $up (i32.add (local.get $up) (local.get $groupStep)))
                        (local.set $t (i32.add (local.get $t) (i32.const 4)))
                        (br $t_next)))
                    (local.set $i (i32.add (local.get $i) (i32.const 2)))
                    (br $i_next)))
                (local.set $xb (i32.add (local.get $xb) (i32.const 1)))
                (br $xb_next)))
            (local.set $y (i32.add (local.get $y) (i32.const 1)))
            (br $y_next)))
        (local.set $i0 (local.get $iEnd))
        (br $tile_next))))

  ;; ropeScores' inner block: queries at (gI, hI) and (gJ, hJ), a group of four memories at up;
  ;; stores the first `left` memories' sums (rows st and, when `two`, st + ld4; memories n4 bytes
  ;; apart). A function of its own so that V8 keeps all its vectors in registers.
  (func $ropeBlock (param $gI i32) (param $hI i32) (param $gJ i32) (param $hJ i32) (param $up i32)
    (param $st i32) (param $n4 i32) (param $ld4 i32) (param $two i32) (param $left i32)
    (local $c i32) (local $q0 v128) (local $q1 v128) (local $v v128)
    (local $a00 v128) (local $a01 v128) (local $a02 v128) (local $a03 v128)
    (local $a10 v128) (local $a11 v128) (local $a12 v128) (local $a13 v128)
    ;; the sums start from the bias terms
    (local.set $a00 (f32x4.add (v128.load offset=1024 (local.get $gI)) (v128.load32_splat offset=256 (local.get $hI))))
    (local.set $a01 (local.get $a00)) (local.set $a02 (local.get $a00)) (local.set $a03 (local.get $a00))
    (local.set $a10 (f32x4.add (v128.load offset=1024 (local.get $gJ)) (v128.load32_splat offset=256 (local.get $hJ))))
    (local.set $a11 (local.get $a10)) (local.set $a12 (local.get $a10)) (local.set $a13 (local.get $a10))
    (local.set $c (i32.const 64))
    (loop $c_next
      (local.set $q0 (f32x4.add (v128.load (local.get $gI)) (v128.load32_splat (local.get $hI))))
      (local.set $q1 (f32x4.add (v128.load (local.get $gJ)) (v128.load32_splat (local.get $hJ))))
      (local.set $v (v128.load (local.get $up)))
      (local.set $a00 (f32x4.add (local.get $a00) (f32x4.mul (local.get $q0) (local.get $v))))
      (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $q1) (local.get $v))))
      (local.set $v (v128.load offset=16 (local.get $up)))
      (local.set $a01 (f32x4.add (local.get $a01) (f32x4.mul (local.get $q0) (local.get $v))))
      (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $q1) (local.get $v))))
      (local.set $v (v128.load offset=32 (local.get $up)))
      (local.set $a02 (f32x4.add (local.get $a02) (f32x4.mul (local.get $q0) (local.get $v))))
      (local.set $a12 (f32x4.add (local.get $a12) (f32x4.mul (local.get $q1) (local.get $v))))
      (local.set $v (v128.load offset=48 (local.get $up)))
      (local.set $a03 (f32x4.add (local.get $a03) (f32x4.mul (local.get $q0) (local.get $v))))
      (local.set $a13 (f32x4.add (local.get $a13) (f32x4.mul (local.get $q1) (local.get $v))))
      (local.set $gI (i32.add (local.get $gI) (i32.const 16)))
      (local.set $hI (i32.add (local.get $hI) (i32.const 4)))
      (local.set $gJ (i32.add (local.get $gJ) (i32.const 16)))
      (local.set $hJ (i32.add (local.get $hJ) (i32.const 4)))
      (local.set $up (i32.add (local.get $up) (i32.const 64)))
      (local.set $c (i32.sub (local.get $c) (i32.const 1)))
      (br_if $c_next (local.get $c)))
    (v128.store (local.get $st) (local.get $a00))
    (if (local.get $two) (then (v128.store (i32.add (local.get $st) (local.get $ld4)) (local.get $a10))))
    (if (i32.gt_u (local.get $left) (i32.const 1)) (then
      (local.set $st (i32.add (local.get $st) (local.get $n4)))
      (v128.store (local.get $st) (local.get $a01))
      (if (local.get $two) (then (v128.store (i32.add (local.get $st) (local.get $ld4)) (local.get $a11))))
      (if (i32.gt_u (local.get $left) (i32.const 2)) (then
        (local.set $st (i32.add (local.get $st) (local.get $n4)))
        (v128.store (local.get $st) (local.get $a02))
        (if (local.get $two) (then (v128.store (i32.add (local.get $st) (local.get $ld4)) (local.get $a12))))
        (if (i32.gt_u (local.get $left) (i32.const 3)) (then
          (local.set $st (i32.add (local.get $st) (local.get $n4)))
          (v128.store (local.get $st) (local.get $a03))
          (if (local.get $two) (then (v128.store (i32.add (local.get $st) (local.get $ld4)) (local.get $a13)))))))))))

  ;; one row of a block: 8 columns, or 4 (the last ones)
  (func $store_row (param $at i32) (param $lo v128) (param $hi v128) (param $wide i32)
    (v128.store (local.get $at) (local.get $lo))
    (if (local.get $wide) (then (v128.store offset=16 (local.get $at) (local.get $hi))))))
