// Marks dist/cjs as CommonJS: the package itself is an ES module ("type": "module").
import { writeFileSync } from "node:fs";

writeFileSync(
  new URL("../dist/cjs/package.json", import.meta.url),
  JSON.stringify({ type: "commonjs" }) + "\n",
);
