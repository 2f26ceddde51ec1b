import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App';
import { initTheme } from './lib/theme';

initTheme();
render(<App />, document.getElementById('app') as HTMLElement);
