// TOTP enrolment: the server draws a QR code of the secret, the user scans it (or
// types the secret), confirms with a first code, and gets ten recovery codes that
// are shown this one time.

import { useEffect, useState } from 'preact/hooks';
import { confirmEnrollment, refreshMe, startEnrollment, type Enrollment } from '../lib/auth';

export function MfaEnrollment({ onDone }: { onDone: () => void }) {
  const [enrollment, setEnrollment] = useState<Enrollment | null>(null);
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    startEnrollment()
      .then(setEnrollment)
      .catch((failure: unknown) => setError((failure as Error).message));
  }, []);

  const confirm = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const answer = await confirmEnrollment(code);
      setCodes(answer.recovery_codes);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (codes) {
    return (
      <div class="form-stack" data-testid="recovery-codes">
        <p>
          Two-factor authentication is on. Keep these recovery codes somewhere safe: each one signs you in once
          without your device, and they are not shown again.
        </p>
        <ul class="code-list">
          {codes.map((item) => (
            <li key={item} class="mono" data-testid="recovery-code">
              {item}
            </li>
          ))}
        </ul>
        <button
          type="button"
          class="button button-primary"
          onClick={async () => {
            await refreshMe();
            onDone();
          }}
        >
          I saved them, continue
        </button>
      </div>
    );
  }

  return (
    <div class="form-stack" data-testid="mfa-enrollment">
      {enrollment ? (
        <>
          <p>Scan this code with an authenticator app, or enter the secret by hand.</p>
          <img class="qr" src={enrollment.qr_svg} alt="QR code of the authenticator secret" width={200} height={200} />
          <p>
            Secret: <code class="mono" data-testid="mfa-secret">{enrollment.secret}</code>
          </p>
          <form class="form-stack" onSubmit={confirm}>
            <label class="form-field">
              <span>Code from the app</span>
              <input name="code" autocomplete="one-time-code" inputMode="numeric" required value={code} onInput={(event) => setCode(event.currentTarget.value)} />
            </label>
            {error && (
              <p class="notice notice-error" role="alert" data-testid="form-error">
                {error}
              </p>
            )}
            <button type="submit" class="button button-primary" disabled={busy}>
              Turn on two-factor authentication
            </button>
          </form>
        </>
      ) : error ? (
        <p class="notice notice-error" role="alert">
          {error}
        </p>
      ) : (
        <p class="muted" role="status">
          Preparing…
        </p>
      )}
    </div>
  );
}
