// Lint: typescript-eslint (type-aware, incl. no-floating-promises), no import cycles, and
// imports that run one way between the floors of src/ (docs/DEVELOPING.md, "Layout").
import tseslint from 'typescript-eslint';
import importPlugin from 'eslint-plugin-import';

// Each floor may import only from the floors listed before it.
// ground: errors, config, weights, backend, ops -> layers -> model -> predictor -> io -> load, viz -> batch, cli
const above = {
  ground: ['layers', 'model', 'onnx', 'predictor', 'io', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  layers: ['model', 'onnx', 'predictor', 'io', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  model: ['onnx', 'predictor', 'io', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  onnx: ['predictor', 'io', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  predictor: ['io', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  io: ['predictor', 'load', 'viz', 'batch', 'cli', 'testing', 'index'],
  top: ['cli', 'testing', 'index'],
};
const patternsFor = (names) => [
  {
    group: names.flatMap((n) => [`**/${n}`, `**/${n}/**`, `**/${n}.js`]),
    message:
      'Imports run one way (errors/config/weights/backend/ops -> layers -> model -> predictor -> io -> load/viz -> cli): move the shared piece down a floor instead.',
  },
];
const floor = (files, names) => ({
  files,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: patternsFor(names) }] },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'weights/**', 'examples/notebooks/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.dev.json', tsconfigRootDir: import.meta.dirname } },
    plugins: { import: importPlugin },
    settings: {
      'import/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import/resolver': { node: { extensions: ['.ts', '.js', '.json'] } },
      'import/extensions': ['.ts', '.js'],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  // Tests load modules lazily on purpose (e.g. the built CommonJS entry).
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  floor(
    [
      'src/errors.ts',
      'src/config.ts',
      'src/config_sam1.ts',
      'src/weights.ts',
      'src/backend.ts',
      'src/executor.ts',
      'src/ops/**',
    ],
    above.ground,
  ),
  floor(['src/layers/**'], above.layers),
  floor(['src/model/**'], above.model),
  floor(['src/predictor/**'], above.predictor),
  floor(['src/io/**'], above.io),
  // onnx/: ONNX graphs emitted from the layers and model, and the ONNX Runtime executor (a model-floor peer)
  floor(['src/onnx/**'], above.onnx),
  floor(['src/load.ts', 'src/export_onnx.ts', 'src/viz/**'], above.top),
);
