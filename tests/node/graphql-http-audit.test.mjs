// The GraphQL over HTTP specification's own audit (graphql-http's auditServer, pinned in package.json) against tidings.
import assert from "node:assert/strict";
import { test } from "node:test";

import { auditServer, serverAudits } from "graphql-http";

import { server } from "./lib/tidings.mjs";

test("graphql-http auditServer: every audit passes, SHOULDs and MAYs included", async () => {
  const results = await auditServer({ url: server.graphqlUrl });
  const failed = results.filter((result) => result.status !== "ok");
  const report = await Promise.all(
    failed.map(async (result) => {
      const body = await result.response.text().catch((error) => `(body unreadable: ${error})`);
      return `${result.id} [${result.status}] ${result.name}: ${result.reason}\n    ${result.response.status} ${body}`;
    }),
  );
  for (const line of report) console.log(line);
  assert.equal(failed.length, 0, `${failed.length} of ${results.length} audits did not pass:\n${report.join("\n")}`);
  // Every audit of this version ran: none was skipped or lost.
  assert.equal(results.length, serverAudits({ url: server.graphqlUrl }).length);
  assert.ok(results.length >= 60, `only ${results.length} audits`);
});
