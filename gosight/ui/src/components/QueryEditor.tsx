// A PromQL editor with completion of metric names, functions, label names and
// label values from the Prometheus API. The suggestion list is an ARIA listbox
// whose active option the textarea names with aria-activedescendant.

import { useEffect, useRef, useState } from 'preact/hooks';
import { isAbort, labelNames, labelValues } from '../lib/api';
import { applyCompletion, completionContext, PROMQL_WORDS, rankCandidates, type CompletionContext } from '../lib/complete';

// Suggestions are fetched once per metric or label and kept for the page's lifetime.
const cache = new Map<string, Promise<string[]>>();

function cached(key: string, load: () => Promise<string[]>): Promise<string[]> {
  let entry = cache.get(key);
  if (!entry) {
    entry = load();
    cache.set(key, entry);
    entry.catch(() => cache.delete(key));
  }
  return entry;
}

async function candidatesFor(context: CompletionContext): Promise<{ items: string[]; kind: string }> {
  switch (context.kind) {
    case 'metric': {
      const names = await cached('__name__', () => labelValues('__name__', []));
      return { items: [...names, ...PROMQL_WORDS], kind: 'metric' };
    }
    case 'label': {
      const match = context.metric ? [context.metric] : [];
      const names = await cached(`labels:${context.metric}`, () => labelNames(match));
      return { items: names.filter((name) => name !== '__name__'), kind: 'label' };
    }
    case 'value': {
      const match = context.metric ? [context.metric] : [];
      const values = await cached(`values:${context.metric}:${context.label}`, () => labelValues(context.label, match));
      return { items: values, kind: 'value' };
    }
    default:
      return { items: [], kind: 'none' };
  }
}

/** Return the short mark shown before a suggestion: function, metric, label or value. */
function kindMark(kind: CompletionContext['kind'], item: string): string {
  if (kind === 'label') return 'l';
  if (kind === 'value') return 'v';
  return PROMQL_WORDS.includes(item) ? 'fn' : 'm';
}

interface QueryEditorProps {
  id: string;
  value: string;
  error: string;
  label: string;
  onChange: (value: string) => void;
  onSubmit: () => void;
}

export function QueryEditor({ id, value, error, label, onChange, onSubmit }: QueryEditorProps) {
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const [items, setItems] = useState<string[]>([]);
  const [active, setActive] = useState(0);
  // Enter picks a suggestion only after the user moved through the list; otherwise it
  // runs the query as typed, so a complete metric name plus Enter does what it says.
  const [navigated, setNavigated] = useState(false);
  const [context, setContext] = useState<CompletionContext>({ kind: 'none' });
  const requestRef = useRef(0);
  const listId = `${id}-suggestions`;
  const errorId = `${id}-error`;
  const open = items.length > 0;

  const close = () => {
    requestRef.current += 1;
    setItems([]);
  };

  const suggest = (text: string, caret: number, explicit: boolean) => {
    const next = completionContext(text, caret);
    const request = ++requestRef.current;
    if (next.kind === 'none' || (next.kind === 'metric' && next.prefix === '' && !explicit)) {
      setItems([]);
      return;
    }
    candidatesFor(next)
      .then(({ items: candidates }) => {
        if (request !== requestRef.current) return;
        setContext(next);
        setItems(rankCandidates(candidates, next.prefix));
        setActive(0);
        setNavigated(false);
      })
      .catch((failure: unknown) => {
        // Completion is a convenience: a failed lookup leaves the editor usable.
        if (!isAbort(failure) && request === requestRef.current) setItems([]);
      });
  };

  const accept = (item: string) => {
    const input = inputRef.current;
    if (!input) return;
    // Read the text from the element: keys typed since the last render are not in `value` yet.
    const current = input.value;
    const result = applyCompletion(current, input.selectionStart ?? current.length, context, item);
    onChange(result.text);
    close();
    requestAnimationFrame(() => {
      // Move the caret only if nothing was typed meanwhile, or it would jump back mid-word.
      if (input.value !== result.text) return;
      input.focus();
      input.setSelectionRange(result.caret, result.caret);
    });
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (open) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const step = event.key === 'ArrowDown' ? 1 : -1;
        setActive((index) => (index + step + items.length) % items.length);
        setNavigated(true);
        return;
      }
      if (event.key === 'Tab' || (event.key === 'Enter' && navigated && !event.shiftKey)) {
        event.preventDefault();
        accept(items[active]);
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
        return;
      }
    }
    if (event.key === ' ' && event.ctrlKey) {
      event.preventDefault();
      const input = event.currentTarget as HTMLTextAreaElement;
      suggest(input.value, input.selectionStart ?? input.value.length, true);
      return;
    }
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      close();
      onSubmit();
    }
  };

  useEffect(() => {
    if (!open) return;
    document.getElementById(`${listId}-${active}`)?.scrollIntoView({ block: 'nearest' });
  }, [active, open]);

  const rows = Math.min(8, Math.max(1, value.split('\n').length));
  return (
    <div class="editor">
      <textarea
        ref={inputRef}
        id={id}
        class={`editor-input${error ? ' invalid' : ''}`}
        rows={rows}
        value={value}
        spellcheck={false}
        autocomplete="off"
        autocapitalize="off"
        placeholder="PromQL, such as rate(node_network_receive_bytes_total[5m])"
        aria-label={label}
        aria-autocomplete="list"
        aria-haspopup="listbox"
        aria-controls={listId}
        aria-activedescendant={open ? `${listId}-${active}` : undefined}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={error ? errorId : undefined}
        data-testid="query-input"
        onInput={(event) => {
          const input = event.currentTarget;
          onChange(input.value);
          suggest(input.value, input.selectionStart ?? input.value.length, false);
        }}
        onKeyDown={onKeyDown}
        onBlur={() => window.setTimeout(close, 150)}
      />
      {open && (
        <ul id={listId} class="suggestions" role="listbox" aria-label="Suggestions">
          {items.map((item, index) => (
            <li
              key={item}
              id={`${listId}-${index}`}
              role="option"
              aria-selected={index === active}
              class={`suggestion${index === active ? ' active' : ''}`}
              onMouseDown={(event) => {
                event.preventDefault();
                accept(item);
              }}
            >
              <span class={`suggestion-kind kind-${context.kind}`} aria-hidden="true">
                {kindMark(context.kind, item)}
              </span>
              {item}
            </li>
          ))}
        </ul>
      )}
      {error && (
        <p id={errorId} class="query-error" role="alert" data-testid="query-error">
          {error}
        </p>
      )}
    </div>
  );
}
