// A GraphiQL link carries its operation: `?query=`, `?variables=` and `?operationName=`, read when the page opens and
// kept in step with the active tab, as GraphiQL's own examples and Strawberry's page do. Headers never go into the
// address: they hold the token.
import { type TabsState, useGraphiQL, useGraphiQLActions } from "@graphiql/react";
import { useEffect, useRef } from "react";

export interface Link {
  query?: string;
  variables?: string;
  operationName?: string;
}

const PARAMETERS = ["query", "variables", "operationName"] as const;

// Browsers throttle history.replaceState (Safari throws after 100 calls in 30 s): one write when typing pauses.
const WRITE_DELAY_MS = 300;

/** The operation a link opens with; variables pretty-printed for the editor. */
export function readLink(search: string): Link {
  const params = new URLSearchParams(search);
  const [query, variables, operationName] = PARAMETERS.map((name) => params.get(name) || undefined);
  return { query, variables: variables && reformat(variables, 2), operationName };
}

/** An `onTabChange` handler that puts the active tab's operation into the address (debounced, replaceState). */
export function linkWriter(): (state: TabsState) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (state) => {
    const tab = state.tabs[state.activeTabIndex];
    clearTimeout(timer);
    timer = setTimeout(() => {
      const url = new URL(location.href);
      const values = [tab?.query, tab?.variables && reformat(tab.variables), tab?.operationName];
      PARAMETERS.forEach((name, i) => {
        const value = values[i];
        if (value) url.searchParams.set(name, value);
        else url.searchParams.delete(name);
      });
      if (url.href !== location.href) history.replaceState(history.state, "", url);
    }, WRITE_DELAY_MS);
  };
}

/** JSON variables compact in the address and indented in the editor; anything else (JSONC, a typo) as it is. */
function reformat(json: string, indent?: number): string {
  try {
    return JSON.stringify(JSON.parse(json), null, indent);
  } catch {
    return json;
  }
}

/**
 * Selects the link's operation once GraphiQL has parsed the document (it selects the first one by itself).
 * GraphiQL's `operationName` prop would not do: it forces that operation on every run and hides the others.
 */
export function SelectLinkedOperation({ name }: { name: string | undefined }): null {
  const { operations } = useGraphiQL((state) => ({ operations: state.operations }));
  const { setOperationName } = useGraphiQLActions();
  const applied = useRef(false);
  useEffect(() => {
    if (!name || applied.current || !operations?.some((operation) => operation.name?.value === name)) return;
    applied.current = true;
    setOperationName(name);
  }, [name, operations, setOperationName]);
  return null;
}
