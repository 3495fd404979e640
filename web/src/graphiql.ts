// The entry of /graphql, kept small: the page's HTML already shows "Loading GraphiQL…", and GraphiQL itself (React,
// Monaco and its workers, some 4 MB) comes as a chunk of its own, so the first paint waits for none of it.
const root = document.getElementById("graphiql")!;

import("./graphiql-app").then(
  ({ mount }) => mount(root),
  (error: unknown) => {
    const status = root.querySelector(".graphiql-loading");
    status?.setAttribute("role", "alert");
    status?.replaceChildren(`GraphiQL could not load (${String(error)}). Reload the page to try again.`);
  },
);
