// The part's image(s) with the models' overlays, zoomable (buttons, wheel, + / − / 0 keys) and
// pannable (drag). Overlays are stretched over the whole image: anomaly maps and masks are
// low-resolution grayscale PNGs (0..255 = score 0..1, 128 ≈ the 0.5 threshold), boxes are in
// source-image pixels.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorMessage, get, imageUrl } from '../api';
import { isTyping } from '../components/common';
import { formatTime } from '../format';
import type { Boxes, ImageRef, Overlay, Removed } from '../types';

type LayerKey = 'heatmap' | 'boxes' | 'mask';

const BROWSER_IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif', 'image/bmp']);

export function ImageViewer(props: { images: ImageRef[]; overlays: Overlay[] }) {
  const { images, overlays } = props;
  const [view, setView] = useState(0);
  const [layers, setLayers] = useState<Record<LayerKey, boolean>>({ heatmap: true, boxes: true, mask: true });
  const image = images[view];
  const viewOverlays = overlays.filter((o) => (o.view ?? 0) === view);
  const removedOverlays = viewOverlays.filter((o) => o.removed);
  const forView = viewOverlays.filter((o) => !o.removed);
  const maps = forView.filter((o) => o.kind === 'anomaly_map');
  const masks = forView.filter((o) => o.kind === 'mask');
  const boxes = forView.filter((o) => o.kind === 'boxes');

  if (!image) return <div class="viewer viewer-empty">No image stored for this inspection.</div>;

  const toggle = (key: LayerKey, label: string, count: number) => (
    <label class={`toggle${count ? '' : ' disabled'}`} title={count ? undefined : `No ${label.toLowerCase()} overlay for this view`}>
      <input type="checkbox" checked={layers[key]} disabled={!count} onChange={(e) => setLayers({ ...layers, [key]: e.currentTarget.checked })} />
      {label}
    </label>
  );

  return (
    <div class="viewer">
      {images.length > 1 ? (
        <div class="tabs" role="tablist" aria-label="Views">
          {images.map((img, i) => (
            <button
              key={img.sha256 + i}
              type="button"
              role="tab"
              aria-selected={i === view}
              class={i === view ? 'tab active' : 'tab'}
              onClick={() => setView(i)}
            >
              View {i + 1}
            </button>
          ))}
        </div>
      ) : null}
      {image.removed ? (
        <div class="viewer-removed" data-testid="image-removed" role="note">
          <strong>Image removed</strong>
          <p>{removalText(image.removed)}</p>
          <p class="muted mono hash">sha256 {image.sha256} (kept in the record)</p>
        </div>
      ) : (
        <ZoomPan
          key={view}
          image={image}
          layers={(scale) => (
            <>
              {maps.length ? <GrayOverlay shas={maps.map((m) => m.sha256)} kind="heatmap" hidden={!layers.heatmap} testId="overlay-heatmap" /> : null}
              {masks.length ? <GrayOverlay shas={masks.map((m) => m.sha256)} kind="mask" hidden={!layers.mask} testId="overlay-mask" /> : null}
              {boxes.length ? <BoxesOverlay shas={boxes.map((b) => b.sha256)} image={image} scale={scale} hidden={!layers.boxes} /> : null}
            </>
          )}
          tools={(zoomControls) => (
            <div class="viewer-tools">
              {toggle('heatmap', 'Heatmap', maps.length)}
              {toggle('boxes', 'Boxes', boxes.length)}
              {toggle('mask', 'Mask', masks.length)}
              <span class="spacer" />
              {zoomControls}
            </div>
          )}
        />
      )}
      {!image.removed && removedOverlays.length ? (
        <p class="note" data-testid="overlay-removed">
          {removedOverlays.map((o) => `The ${o.kind.replace('_', ' ')} of ${o.model}: ${removalText(o.removed!)}`).join(' ')}
        </p>
      ) : null}
    </div>
  );
}

/** What the inspection document says of a file the retention policy removed, as a sentence. */
export function removalText(r: Removed): string {
  return `Removed on ${formatTime(r.at)} by the retention policy (${r.policy === 'quota' ? 'disk quota' : 'maximum age'}): ${r.reason}.`;
}

// ---- zoom and pan ---------------------------------------------------------------------------

interface Xform {
  s: number;
  tx: number;
  ty: number;
}

function ZoomPan(props: {
  image: ImageRef;
  /** The overlays, given the current scale (box labels keep a constant screen size). */
  layers: (scale: number) => ComponentChildren;
  /** The toolbar, given the zoom buttons to place in it. */
  tools: (controls: ComponentChildren) => ComponentChildren;
}) {
  const { image } = props;
  const renderLayers = props.layers;
  const renderTools = props.tools;
  const viewport = useRef<HTMLDivElement>(null);
  const [natural, setNatural] = useState<{ w: number; h: number }>({ w: image.width || 0, h: image.height || 0 });
  const [xf, setXf] = useState<Xform>({ s: 1, tx: 0, ty: 0 });
  const [imgError, setImgError] = useState(false);
  // Until the user zooms or pans, the image follows the viewport's size ("fit").
  const fitted = useRef(true);
  const xfRef = useRef(xf);
  xfRef.current = xf;
  const canShow = BROWSER_IMAGE_TYPES.has(image.mediaType.toLowerCase());
  const w = natural.w || 1000;
  const h = natural.h || 750;

  const fit = () => {
    const el = viewport.current;
    if (!el) return;
    const vw = el.clientWidth;
    const vh = el.clientHeight;
    const s = Math.min(vw / w, vh / h) || 1;
    fitted.current = true;
    setXf({ s, tx: (vw - w * s) / 2, ty: (vh - h * s) / 2 });
  };

  const zoomAt = (factor: number, cx?: number, cy?: number) => {
    const el = viewport.current;
    if (!el) return;
    const { s, tx, ty } = xfRef.current;
    const px = cx ?? el.clientWidth / 2;
    const py = cy ?? el.clientHeight / 2;
    const ns = Math.max(0.05, Math.min(40, s * factor));
    const k = ns / s;
    fitted.current = false;
    setXf({ s: ns, tx: px - (px - tx) * k, ty: py - (py - ty) * k });
  };

  useEffect(() => {
    fit();
    const el = viewport.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => {
      if (fitted.current) fit();
    });
    ro.observe(el);
    return () => ro.disconnect();
    // Re-fit when the image's size becomes known.
  }, [w, h]);

  // Wheel zoom needs a non-passive listener to keep the page from scrolling.
  useEffect(() => {
    const el = viewport.current;
    if (!el) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = el.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, []);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey || document.querySelector('[role="dialog"]')) return;
      if (e.key === '+' || e.key === '=') zoomAt(1.25);
      else if (e.key === '-' || e.key === '_') zoomAt(0.8);
      else if (e.key === '0') fit();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [w, h]);

  const drag = useRef<{ id: number; x: number; y: number } | null>(null);
  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    drag.current = { id: e.pointerId, x: e.clientX, y: e.clientY };
    (e.currentTarget as HTMLElement).setPointerCapture?.(e.pointerId);
  };
  const onPointerMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d || d.id !== e.pointerId) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    d.x = e.clientX;
    d.y = e.clientY;
    fitted.current = false;
    setXf((p) => ({ ...p, tx: p.tx + dx, ty: p.ty + dy }));
  };
  const endDrag = () => {
    drag.current = null;
  };

  const controls = (
    <div class="zoom" role="group" aria-label="Zoom">
      <button type="button" aria-label="Zoom out" title="Zoom out (−)" onClick={() => zoomAt(0.8)}>
        −
      </button>
      <span class="zoom-level" aria-live="polite">
        {Math.round(xf.s * 100)}%
      </span>
      <button type="button" aria-label="Zoom in" title="Zoom in (+)" onClick={() => zoomAt(1.25)}>
        +
      </button>
      <button type="button" title="Fit the image (0)" onClick={fit}>
        Fit
      </button>
    </div>
  );

  return (
    <>
      {renderTools(controls)}
      {!canShow ? (
        <p class="note" data-testid="image-note">
          This image is {image.mediaType.replace('image/', '').toUpperCase()}, which browsers cannot display; the overlays are drawn on a blank frame of
          the same size. <a href={imageUrl(image.sha256)} download>Download the image</a>
        </p>
      ) : imgError ? (
        <p class="note error" data-testid="image-note">
          The image could not be loaded.
        </p>
      ) : null}
      <div
        ref={viewport}
        class="viewport"
        data-testid="image-viewport"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
      >
        {/* Position and scale are set through element.style (CSSOM), which the CSP allows. */}
        <div
          class="stage"
          style={{ width: `${w}px`, height: `${h}px`, transform: `translate(${xf.tx}px, ${xf.ty}px) scale(${xf.s})` }}
        >
          {canShow && !imgError ? (
            <img
              src={imageUrl(image.sha256)}
              alt="Inspected part"
              draggable={false}
              data-testid="inspection-image"
              onLoad={(e) => {
                const el = e.currentTarget;
                if (!natural.w || !natural.h) setNatural({ w: el.naturalWidth, h: el.naturalHeight });
              }}
              onError={() => setImgError(true)}
            />
          ) : (
            <div class="no-image" />
          )}
          {renderLayers(xf.s)}
        </div>
      </div>
    </>
  );
}

// ---- grayscale overlays (anomaly map → colour map, mask → tint) ------------------------------

/** An inferno-like colour map: dark purple → red → orange → pale yellow. */
const STOPS: [number, number, number, number][] = [
  [0.0, 0, 0, 4],
  [0.25, 87, 16, 110],
  [0.5, 188, 55, 84],
  [0.75, 249, 142, 9],
  [1.0, 252, 255, 164],
];

const LUT: Uint8ClampedArray = (() => {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < STOPS.length - 2 && t > STOPS[k + 1]![0]) k++;
    const [t0, r0, g0, b0] = STOPS[k]!;
    const [t1, r1, g1, b1] = STOPS[k + 1]!;
    const f = (t - t0) / (t1 - t0);
    lut[i * 4] = r0 + (r1 - r0) * f;
    lut[i * 4 + 1] = g0 + (g1 - g0) * f;
    lut[i * 4 + 2] = b0 + (b1 - b0) * f;
    // Low scores are transparent so the part stays visible; the threshold (0.5) is clearly tinted.
    lut[i * 4 + 3] = t < 0.2 ? 0 : Math.min(1, (t - 0.2) / 0.5) * 200;
  }
  return lut;
})();

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = 'async';
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the overlay image could not be loaded'));
    img.src = src;
  });
}

function GrayOverlay(props: { shas: string[]; kind: 'heatmap' | 'mask'; hidden: boolean; testId: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [error, setError] = useState<string | null>(null);
  const key = props.shas.join(',');

  useEffect(() => {
    let cancelled = false;
    Promise.all(props.shas.map((s) => loadImage(imageUrl(s))))
      .then((imgs) => {
        const el = canvas.current;
        if (cancelled || !el || !imgs[0]) return;
        // Several models' maps for one view are combined by taking the highest score per pixel.
        const w = imgs[0].naturalWidth;
        const h = imgs[0].naturalHeight;
        const scratch = document.createElement('canvas');
        scratch.width = w;
        scratch.height = h;
        const sctx = scratch.getContext('2d', { willReadFrequently: true });
        if (!sctx) return;
        const score = new Uint8ClampedArray(w * h);
        for (const img of imgs) {
          sctx.clearRect(0, 0, w, h);
          sctx.drawImage(img, 0, 0, w, h);
          const px = sctx.getImageData(0, 0, w, h).data;
          for (let i = 0; i < w * h; i++) score[i] = Math.max(score[i]!, px[i * 4]!);
        }
        el.width = w;
        el.height = h;
        const ctx = el.getContext('2d');
        if (!ctx) return;
        const out = ctx.createImageData(w, h);
        const d = out.data;
        for (let i = 0; i < w * h; i++) {
          const v = score[i]!;
          if (props.kind === 'heatmap') {
            d[i * 4] = LUT[v * 4]!;
            d[i * 4 + 1] = LUT[v * 4 + 1]!;
            d[i * 4 + 2] = LUT[v * 4 + 2]!;
            d[i * 4 + 3] = LUT[v * 4 + 3]!;
          } else if (v >= 128) {
            // Mask: a flat cyan tint where the model says "defect" (distinct from the heat colours).
            d[i * 4] = 0;
            d[i * 4 + 1] = 200;
            d[i * 4 + 2] = 255;
            d[i * 4 + 3] = 110;
          }
        }
        ctx.putImageData(out, 0, 0);
        setError(null);
      })
      .catch((err: unknown) => {
        if (!cancelled) setError(errorMessage(err));
      });
    return () => {
      cancelled = true;
    };
  }, [key, props.kind]);

  return (
    <>
      <canvas
        ref={canvas}
        class={`overlay overlay-${props.kind}${props.hidden ? ' off' : ''}`}
        data-testid={props.testId}
        aria-label={props.kind === 'heatmap' ? 'Anomaly scores' : 'Defect segmentation'}
        role="img"
      />
      {error ? <span class="overlay-error">{error}</span> : null}
    </>
  );
}

// ---- boxes ------------------------------------------------------------------------------------

function BoxesOverlay(props: { shas: string[]; image: ImageRef; scale: number; hidden: boolean }) {
  const [sets, setSets] = useState<Boxes[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = props.shas.join(',');
  useEffect(() => {
    let cancelled = false;
    Promise.all(props.shas.map((s) => get<Boxes>(imageUrl(s))))
      .then((r) => {
        if (!cancelled) setSets(r);
      })
      .catch((err: unknown) => {
        if (!cancelled) setError(errorMessage(err));
      });
    return () => {
      cancelled = true;
    };
  }, [key]);

  const W = props.image.width || sets?.[0]?.width || 1000;
  const H = props.image.height || sets?.[0]?.height || 750;
  // Label text stays about 12 screen pixels high whatever the zoom.
  const font = 12 / props.scale;
  return (
    <>
      <svg
        class={`overlay overlay-boxes${props.hidden ? ' off' : ''}`}
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        data-testid="overlay-boxes"
        role="img"
        aria-label="Detected defects"
      >
        {(sets ?? []).map((set, si) =>
          set.boxes.map((b, bi) => {
            // Boxes are in source-image pixels; rescale if the JSON was made for another size.
            const kx = set.width ? W / set.width : 1;
            const ky = set.height ? H / set.height : 1;
            const text = `${b.label} ${(b.confidence * 100).toFixed(0)}%`;
            return (
              <g key={`${si}-${bi}`} class="box" data-label={b.label}>
                <title>{text}</title>
                <rect x={b.x * kx} y={b.y * ky} width={b.w * kx} height={b.h * ky} vector-effect="non-scaling-stroke" />
                <text x={b.x * kx} y={Math.max(font, b.y * ky - font * 0.3)} font-size={font}>
                  {text}
                </text>
              </g>
            );
          }),
        )}
      </svg>
      {error ? <span class="overlay-error">{error}</span> : null}
    </>
  );
}
