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

  ;; one row of a block: 8 columns, or 4 (the last ones)
  (func $store_row (param $at i32) (param $lo v128) (param $hi v128) (param $wide i32)
    (v128.store (local.get $at) (local.get $lo))
    (if (local.get $wide) (then (v128.store offset=16 (local.get $at) (local.get $hi))))))
